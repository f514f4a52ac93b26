"""What a handshake-era client declared at ``initialize``, carried by its session id when
HTTP is stateless (see ``stateless``): the id is ``sl1.`` and the base64url JSON of the
declared capabilities with 128 random bits, so any replica reads it back, keeping
nothing. It holds only what the client declared about itself: a forged one gains
nothing the client could not declare.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any

from fastmcp.server.dependencies import get_http_request

PREFIX = "sl1."
SESSION_HEADER = "mcp-session-id"
MAX_DECLARATION = 8192
"""Bytes of declared capabilities carried at most (more: no session id, as before)."""
STATELESS = "agents_mcp_stateless"
"""The key, in an HTTP request's state, of the mark a stateless app puts on each request."""


def session_id(capabilities: Mapping[str, Any]) -> str | None:
    """The session id that carries ``capabilities`` (None when they are too big)."""
    body = json.dumps({"c": capabilities, "n": secrets.token_hex(16)}, separators=(",", ":"))
    if len(body) > MAX_DECLARATION:
        return None
    return PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def declared(session: str | None) -> dict[str, Any] | None:
    """The capabilities a session id of ours carries; None for any other value."""
    if session is None or not session.startswith(PREFIX) or len(session) > 2 * MAX_DECLARATION:
        return None
    raw = session[len(PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        caps = data["c"]
    except (ValueError, KeyError, TypeError):
        return None
    return caps if isinstance(caps, dict) else None


def current_session() -> str | None:
    """This HTTP request's ``Mcp-Session-Id``, if it is one of ours."""
    try:
        value = get_http_request().headers.get(SESSION_HEADER)
    except RuntimeError:  # not over HTTP
        return None
    return value if value is not None and value.startswith(PREFIX) else None


def stateless_request() -> bool:
    """Whether this request came over HTTP served without sessions (``stateless_http``),
    whatever session id it carries (a client may send none, or one not of ours)."""
    try:
        return bool(getattr(get_http_request().state, STATELESS, False))
    except RuntimeError:  # not over HTTP
        return False


def declared_capabilities() -> dict[str, Any] | None:
    """What this request's client declared at ``initialize``, when a stateless session
    id of ours carries it; None otherwise (stdio, sessions, the 2026-07-28 era)."""
    return declared(current_session())
