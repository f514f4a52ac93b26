"""Shared pieces of the config models: the base model, error helpers, name checks."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agents_mcp.config.errors import Loc

ApprovalMode = Literal["always", "never", "read_only"]
Transport = Literal["stdio", "http", "streamable-http"]

SEPARATOR = "__"
"""Joins server and tool into the names offered to models: ``<server>__<tool>``."""

# Tools are offered as <server>__<tool> and split at the first "__", so a server name must
# not contain "__" nor end with "_" ("fs_" + "__x" would read as "fs" + "___x").
_SERVER = r"_?[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*"
_STDIO_KEYS = "command (plus args, env, cwd)"
_HTTP_KEYS = "url (plus headers)"
LOCAL = "local"
"""The owner over stdio, from the CLI and over loopback HTTP without tokens."""
_NO_AGENTS = "at least one agent is required: add an [agents.<name>] table (description, model)"


def _err(kind: str, message: str) -> PydanticCustomError:
    """A pydantic error with ``message`` verbatim (passed as context: braces need no escaping)."""
    return PydanticCustomError(kind, "{detail}", {"detail": message})


def _fail(errors: Iterable[tuple[Loc, str]]) -> None:
    """Raise ``errors`` at sub-locations; pydantic prefixes them with the enclosing key path."""
    if details := [
        InitErrorDetails(type=_err("config", m), loc=at, input=None) for at, m in errors
    ]:
        raise ValidationError.from_exception_data("Config", details)


def _listing(names: Iterable[str]) -> str:
    """``names`` sorted and comma-separated, for "valid: …" hints."""
    return ", ".join(sorted(names)) or "(none defined)"


def _check(test: Callable[[str], object], message: str) -> AfterValidator:
    """Reject strings failing ``test`` with ``message`` (``{value}`` is the string's repr)."""

    def check(value: str) -> str:
        if not test(value):
            raise _err("config", message.format(value=repr(value)))
        return value

    return AfterValidator(check)


_BAD_SERVER = (
    "invalid server name: use letters, digits, '-' and single '_' (not '__', not at the end), "
    "because tools are offered as <server>__<tool>"
)
_BAD_AGENT = "invalid agent name: use 1 to 64 letters, digits, '_' or '-'"
_BAD_RULE = "expected '<server>__<tool>' or '<server>__*', got {value}"
_BAD_URL = "expected an http:// or https:// URL"

_BAD_HOST = (
    "expected a host name or address, optionally with a port (no scheme, no path), got {value}"
)
_BAD_ORIGIN = (
    "expected an origin such as 'https://app.example.com' (scheme and host, no path), got {value}"
)


def _is_host(value: str) -> bool:
    return bool(value) and not any(c in value for c in "/ ")


def _is_origin(value: str) -> bool:
    scheme, sep, rest = value.partition("://")
    return value == "*" or (scheme in ("http", "https") and bool(sep) and _is_host(rest))


ServerName = Annotated[str, _check(re.compile(_SERVER).fullmatch, _BAD_SERVER)]
AgentName = Annotated[str, _check(re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch, _BAD_AGENT)]
RuleName = Annotated[str, _check(re.compile(rf"{_SERVER}{SEPARATOR}.+").fullmatch, _BAD_RULE)]
HttpUrl = Annotated[str, _check(lambda url: url.startswith(("http://", "https://")), _BAD_URL)]
LocalPath = Annotated[str, AfterValidator(os.path.expanduser)]  # made absolute by Config


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_BAD_OWNER = (
    "invalid owner name: 1 to 128 characters, no spaces or control characters, not"
    " starting with 'role:'"
)


def _owner_name(name: str) -> bool:
    return (
        0 < len(name) <= 128
        and name.isprintable()
        and not re.search(r"\s", name)
        and not name.startswith("role:")
    )


def _access_entry(entry: str) -> bool:
    role = entry.removeprefix("role:")
    return _owner_name(role) if entry.startswith("role:") else _owner_name(entry)


OwnerName = Annotated[str, _check(_owner_name, _BAD_OWNER)]
AccessEntry = Annotated[
    str, _check(_access_entry, "expected an owner name or 'role:<name>', got {value}")
]
