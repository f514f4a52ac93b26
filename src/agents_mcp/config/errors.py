"""How the config loader expands ``${VAR}`` and words its errors (used by ``config``).

Kept apart from the models so ``config.py`` reads as the configuration reference.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag
from pydantic_core import ErrorDetails

Loc = tuple[int | str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
UNSET = "environment variable "
"""How the problem of an unset ``${NAME}`` begins."""
_BAD_REFERENCE = "invalid ${…}: write ${NAME} or ${NAME:-default}, or $${ for a literal ${"

# --- environment variables ---------------------------------------------------------------

_REFERENCE = re.compile(
    r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{"
)


def expand(
    value: Any, loc: Loc, environ: Mapping[str, str], problems: list[tuple[Loc, str]]
) -> Any:
    """``value`` with ``${…}`` expanded in every string (not in keys); problems are appended."""
    if isinstance(value, Mapping):
        return {k: expand(v, (*loc, k), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, (*loc, i), environ, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        name, default = m["name"], m["default"]
        if m[0] == "$${":
            return "${"
        if name is None:
            problems.append((loc, _BAD_REFERENCE))
        elif default is not None:
            return environ.get(name) or default  # like the shell: empty counts as unset
        elif name in environ:
            return environ[name]
        else:
            hint = f"use ${{{name}:-default}} for a default"
            problems.append((loc, f"{UNSET}{name} is not set ({hint})"))
        return ""

    return _REFERENCE.sub(substitute, value)


# --- error reporting -----------------------------------------------------------------------


def walk(loc: Loc, root: type[BaseModel]) -> tuple[Loc, type[BaseModel] | None]:
    """Pydantic's ``loc`` as a key path (union tags and ``[key]`` dropped) and the model
    whose key the last element is."""
    path: list[int | str] = []
    tp: Any = root
    owner: type[BaseModel] | None = None
    for part in loc:
        while get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        if get_origin(tp) is Union:  # a tagged union (require_approval): the tag picks the member
            members = {
                m.__metadata__[0].tag: get_args(m)[0]
                for m in get_args(tp)
                if get_origin(m) is Annotated and isinstance(m.__metadata__[0], Tag)
            }
            if part in members:
                tp = members[part]
                continue
        if get_origin(tp) in (Union, UnionType):  # ``X | None``: the key belongs to X
            present = [m for m in get_args(tp) if m is not type(None)]
            tp = present[0] if len(present) == 1 else tp
        if part == "[key]":  # the dict key itself was invalid; the path already ends with it
            continue
        path.append(part)
        owner = tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
        if owner is not None:
            fields = {f.alias or n: f.annotation for n, f in owner.model_fields.items()}
            tp = fields.get(str(part))
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            tp = None
    return tuple(path), owner


def keys(model: type[BaseModel]) -> list[str]:
    return sorted(f.alias or n for n, f in model.model_fields.items() if not f.exclude)


_PLAIN = {"missing": "required key is missing", "string_too_short": "must not be empty"}
_PLAIN |= {"too_short": "must not be empty"}
_PLAIN |= dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "expected an integer")
_PLAIN |= dict.fromkeys(("float_type", "float_parsing"), "expected a number")
_PLAIN |= dict.fromkeys(("dict_type", "model_type"), "expected a table")
_PLAIN |= {"string_type": "expected a string", "list_type": "expected a list"}
_BOUNDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}


def describe(error: ErrorDetails, owner: type[BaseModel] | None) -> str:
    """A short message for one pydantic error. Never shows the input, except a bad choice."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        valid = keys(owner) if owner else []
        close = suggest(str(error["loc"][-1]), valid)
        hint = f"did you mean {close!r}? " if close else ""
        return f"unknown key; {hint}valid keys: {', '.join(valid) or '(none)'}"
    if kind == "literal_error":  # only non-secret fields are Literals
        got = f", got {error['input']!r}" if isinstance(error["input"], str) else ""
        return f"expected {ctx['expected']}{got}"
    for bound, words in _BOUNDS.items():
        if bound in ctx:
            return f"must be {words} {ctx[bound]:g}"
    return _PLAIN.get(kind) or error["msg"].removeprefix("Value error, ")


def suggest(word: str, valid: list[str]) -> str | None:
    """The valid key ``word`` was probably meant to be: same letters but for case, ``_``
    and ``-`` (``apiKey``), else a close spelling (``require_aproval``)."""

    def norm(key: str) -> str:
        return key.lower().replace("_", "").replace("-", "")

    by_norm = {norm(k): k for k in valid}
    close = difflib.get_close_matches(norm(word), list(by_norm), n=1, cutoff=0.75)
    return by_norm[close[0]] if close else None


def dotted(loc: Loc) -> str:
    """``("agents", "a b", "servers", 1)`` → ``agents."a b".servers[1]`` (TOML-style quoting)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            out += f".{key}" if out else key
    return out or "(top level)"


def order(problem: tuple[Loc, str]) -> list[tuple[int, int, str]]:
    return [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in problem[0]]
