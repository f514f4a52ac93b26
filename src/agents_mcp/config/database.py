"""Where the threads are: the values ``--db`` and ``[server] db`` accept.

* a plain path: a SQLite file (``~`` expands; ``:memory:`` is an in-memory database);
* ``sqlite:PATH``: the same, as a URL: ``sqlite:///var/lib/agents/threads.db`` (absolute,
  as in a ``file:///`` URL) or ``sqlite:threads.db`` (relative);
* ``postgresql://…`` or ``postgres://…``: a PostgreSQL database (libpq's URL form).

Anything else that looks like a URL (``mysql://``, ``postgresql+asyncpg://``, ``file:``)
is refused with that list, rather than taken for a file name. A relative file whose name
has a colon before any slash reads as a URL: write it ``./name`` (or ``sqlite:name``).
"""

from __future__ import annotations

import os
import re

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
ACCEPTED = (
    "a SQLite file path, sqlite:PATH (sqlite:///abs/path or sqlite:relative/path),"
    " or a postgresql:// (postgres://) URL"
)
# A scheme of two or more characters: "C:\x.db" and "C:/x.db" stay Windows paths.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")


def is_postgres(db: str) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than a SQLite file."""
    return db.startswith(POSTGRES_SCHEMES)


def db_location(db: str) -> str:
    """``db`` as the store opens it: a PostgreSQL URL as given, else a SQLite file path
    (``sqlite:`` removed, ``~`` expanded; relative paths stay relative).

    Raises:
        ValueError: an empty value, or a scheme agents-mcp does not support (the message
            lists the accepted forms).
    """
    if not db.strip():
        raise ValueError(f"empty; expected {ACCEPTED}")
    if is_postgres(db):
        return db
    found = _SCHEME.match(db)
    if found is None:
        return db if db == ":memory:" else os.path.expanduser(db)
    scheme = found[1]
    if scheme.lower() != "sqlite":
        raise ValueError(f"unsupported database {_scheme_of(db)!r}; expected {ACCEPTED}")
    rest = db[found.end() :]
    if rest.startswith("//"):  # sqlite://HOST/… names a host: only the empty one is local
        host, slash, path = rest[2:].partition("/")
        if host or not slash:
            raise ValueError(
                f"{db!r}: a SQLite file has no host; write sqlite:///absolute/path or"
                " sqlite:relative/path"
            )
        rest = "/" + path
    if not rest or rest == "/":
        raise ValueError(f"{db!r}: no file named; write sqlite:///absolute/path")
    return rest if rest == ":memory:" else os.path.expanduser(rest)


def _scheme_of(db: str) -> str:
    head, sep, _ = db.partition("://")
    return f"{head}://" if sep else db.split(":", 1)[0] + ":"
