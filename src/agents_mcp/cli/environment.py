"""The environment variables a config names, and the ones a server may miss.

A config names variables as ``${NAME}`` (required) or ``${NAME:-default}``. ``check``
reports them, ``install`` and ``init`` put them in a client's ``env`` block. A stdio
server gets only ``PATH``, ``HOME`` and its own ``env``; when one works only with the
user's whole environment, :func:`suspects` names the variables that likely make the
difference (proxies, certificates, runtimes' settings).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")

SET_BY_AGENTS_MCP = frozenset({"AGENTS_MCP_PYTHON"})
"""Variables agents-mcp sets for its own config: never the user's to give."""

_SUSPECT = re.compile(
    r"(^|_)(PROXY|SSL|TLS|CERTS?|CA|CAFILE|CAPATH|BUNDLE)(_|$)"
    r"|^(NODE|NPM_CONFIG|YARN|PIP|UV|PYTHON|REQUESTS|CURL|GIT|JAVA|GOPROXY|GOFLAGS|DENO)",
    re.IGNORECASE,
)
_INHERITED = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM"})


def read_raw(path: Path) -> dict[str, Any]:
    """The file as written, before ``${…}`` expansion ({} if unreadable: the loader explains)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def references(raw: Any) -> dict[str, str | None]:
    """Every ``${NAME}`` in the file's values, in order: its default, None when required.

    A name used both with and without a default counts as required."""
    found: dict[str, str | None] = {}
    for value in _strings(raw):
        for m in _REFERENCE.finditer(value):
            name = m["name"]
            if name is None or name in SET_BY_AGENTS_MCP:
                continue
            default = m["default"]
            if name not in found:
                found[name] = default
            elif default is None:
                found[name] = None
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def suspects(environ: Mapping[str, str], given: Iterable[str]) -> tuple[list[str], list[str]]:
    """The user's variables a stdio server did not get: (likely culprits, all the others)."""
    missing = sorted(set(environ) - _INHERITED - set(given))
    likely = [name for name in missing if _SUSPECT.search(name)]
    return likely, [name for name in missing if name not in likely]


def placeholder(name: str) -> str:
    """The value written for a required variable the user has to fill in."""
    return f"<{name}>"


def env_block(raw: Any, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``env`` a client entry needs for this config: every variable it names, with
    its default (which changes nothing) or a placeholder when it has none; ``given``
    values win. Never a value from the user's environment."""
    block = {
        name: placeholder(name) if default is None else default
        for name, default in references(raw).items()
    }
    return block | dict(given or {})


def placeholders(env: Mapping[str, str]) -> list[str]:
    """The names whose value is still a placeholder."""
    return [name for name, value in env.items() if value == placeholder(name)]
