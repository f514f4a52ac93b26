"""The key that what the store keeps secret (downstream sign-ins) is encrypted with.

``AGENTS_MCP_SECRET_KEY`` holds one or more Fernet keys (what
``cryptography.fernet.Fernet.generate_key()`` prints), comma-separated, newest first:
everything is written with the first and read with any, so a key is rotated by putting
the new one in front and dropping the old one once everything was written anew (the
store rewrites every row with the newest key when it opens, see ``TokenStore.rotate``).

Without it, a SQLite database gets a key file of its own beside it (``<db>.key``,
readable by its owner only): a single-user machine is protected as well as the file's
owner is. A PostgreSQL database, shared by replicas and often by people, gets none:
sign-ins are then refused, with how to set the key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agents_mcp.errors import ConfigError

log = logging.getLogger("agents_mcp.store.secrets")

ENV = "AGENTS_MCP_SECRET_KEY"
MAKE_ONE = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class Undecryptable(Exception):
    """A stored secret no configured key opens (the key changed, or was rotated away)."""


class Keys:
    """Encrypts and decrypts JSON values; without a key, says why on every use."""

    def __init__(self, keys: list[bytes], *, source: str, missing: str | None = None) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None
        self._newest = Fernet(keys[0]) if keys else None
        self.count = len(keys)
        self.source = source
        """Where the key comes from, for messages (never the key itself)."""
        self._missing = missing

    def __repr__(self) -> str:  # never the keys
        return f"<Keys {self.count} from {self.source}>"

    @property
    def usable(self) -> bool:
        return self._fernet is not None

    def _box(self) -> MultiFernet:
        if self._fernet is None:
            raise ConfigError(self._missing or f"{ENV} is not set")
        return self._fernet

    def encrypt(self, value: Mapping[str, Any]) -> str:
        return self._box().encrypt(json.dumps(value).encode()).decode()

    def decrypt(self, text: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._box().decrypt(text.encode()))
        except InvalidToken:
            raise Undecryptable(f"no key of {self.source} opens it") from None
        return data

    def rotate(self, text: str) -> str | None:
        """``text`` encrypted anew with the newest key; None when it already is, or when no
        key opens it."""
        box = self._box()
        if self.count < 2 or self._newest is None:
            return None
        try:
            self._newest.decrypt(text.encode())
            return None
        except InvalidToken:
            pass
        try:
            return box.rotate(text.encode()).decode()
        except InvalidToken:
            return None


def keys_for(db: str, environ: Mapping[str, str] | None = None) -> Keys:
    """The keys for the database ``db`` (a SQLite path, ``:memory:`` or a PostgreSQL URL)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV, "").strip()
    if raw:
        return Keys(_parse(raw), source=ENV)
    if db.startswith(("postgresql://", "postgres://")):
        return Keys(
            [],
            source=ENV,
            missing=f"{ENV} is not set: sign-ins to downstream servers are kept in the"
            f" PostgreSQL database only encrypted; set {ENV} (the same on every replica) to"
            f" a key made with: {MAKE_ONE}",
        )
    if db == ":memory:":
        return Keys([Fernet.generate_key()], source="a key kept in memory")
    path = db + ".key"
    return Keys([_key_file(path)], source=f"the key file {path}")


def _parse(raw: str) -> list[bytes]:
    keys = []
    for i, part in enumerate(p.strip() for p in raw.split(",")):
        try:
            Fernet(part.encode())
        except ValueError:
            raise ConfigError(
                f"{ENV}: key {i + 1} is not a Fernet key (32 bytes in url-safe base64); make"
                f" one with: {MAKE_ONE}"
            ) from None
        keys.append(part.encode())
    return keys


def _key_file(path: str) -> bytes:
    """The key in ``path``, created (readable by its owner only) when there is none."""
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except FileNotFoundError:
        key = _create(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path} ({exc.strerror}); set {ENV}") from None
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(
            f"the key file {path} holds no Fernet key; remove it or set {ENV}"
        ) from None
    if os.name == "posix" and os.stat(path).st_mode & 0o077:
        log.warning("the key file %s is readable by others than its owner: chmod 600 it", path)
    return key


def _create(path: str) -> bytes:
    """Write a new key to ``path`` in one step, unless another process just did."""
    key = Fernet.generate_key()
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if it exists: the first writer's key wins
        except FileExistsError:
            with open(path, "rb") as f:
                return f.read().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot create the key file {path} ({exc.strerror}); set {ENV}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    log.info("created the key file %s for the sign-ins kept in the database", path)
    return key
