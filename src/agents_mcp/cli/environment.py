"""The environment variables a config names, and the ones a server may miss.

A config names variables as ``${NAME}`` (required) or ``${NAME:-default}``. ``check``
reports them, ``install`` and ``init`` put them in a client's ``env`` block. A stdio
server gets only ``PATH``, ``HOME`` and its own ``env``; when one works only with the
user's whole environment, :func:`suspects` names the variables that likely make the
difference (proxies, certificates, runtimes' settings).
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agents_mcp.config import ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL

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
    its default (which changes nothing) or a placeholder when it has none, or when its
    default is empty and it is the API key of an endpoint that needs one; ``given``
    values win. Never a value from the user's environment."""
    keys = _needed_keys(raw)
    block = {
        name: placeholder(name) if default is None or (not default and name in keys) else default
        for name, default in references(raw).items()
    }
    return block | dict(given or {})


_LOCAL_SUFFIXES = (".local", ".internal", ".lan", ".localhost")


def needs_key(provider: str, base_url: str | None) -> bool:
    """Whether a model's endpoint surely wants an API key: a hosted one. Loopback,
    private addresses and local names (Ollama, vLLM, LM Studio, a container's name)
    usually do not; neither does the demo model."""
    if provider == "demo":
        return False
    host = (urlsplit(base_url or "").hostname or "").lower()
    if not host or "." not in host or host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (address.is_private or address.is_loopback or address.is_link_local)


def key_variables(raw: Any) -> dict[str, str]:
    """The variables a model's ``api_key`` is read from: name → the model."""
    models = raw.get("models") if isinstance(raw, Mapping) else None
    found: dict[str, str] = {}
    for model, entry in (models or {}).items() if isinstance(models, Mapping) else ():
        if not isinstance(entry, Mapping):
            continue
        key = entry.get("api_key")
        if key is None and entry.get("provider") == "anthropic":
            key = ANTHROPIC_API_KEY
        if isinstance(key, str):
            found |= dict.fromkeys(references(key), str(model))
    return found


def _needed_keys(raw: Any) -> set[str]:
    """The key variables of models whose endpoint, as the file's defaults give it,
    needs a key."""
    models = raw.get("models", {}) if isinstance(raw, Mapping) else {}
    needed = set()
    for variable, model in key_variables(raw).items():
        entry = models.get(model, {})
        provider = str(entry.get("provider", "openai"))
        url = entry.get("base_url", ANTHROPIC_BASE_URL if provider == "anthropic" else None)
        if needs_key(provider, _defaults_only(url) if isinstance(url, str) else None):
            needed.add(variable)
    return needed


def _defaults_only(text: str) -> str:
    """``text`` with each ``${NAME:-default}`` replaced by its default (never the
    user's environment)."""
    return _REFERENCE.sub(lambda m: "${" if m[0] == "$${" else m["default"] or "", text)


def placeholders(env: Mapping[str, str]) -> list[str]:
    """The names whose value is still a placeholder."""
    return [name for name, value in env.items() if value == placeholder(name)]
