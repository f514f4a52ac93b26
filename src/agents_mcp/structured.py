"""Structured answers: a JSON Schema the final answer of a turn must meet.

A caller (``chat_with_agent(output_schema=…)``) or the agent's config names the schema.
Each provider adapter asks for it natively where its API can take the schema
(:func:`strict_compatible` for OpenAI's strict ``json_schema``, :func:`tool_compatible` for
Anthropic's forced :data:`ANSWER_TOOL`), and otherwise puts :func:`instructions` in the
system prompt. Either way the loop checks the answer (:func:`check_answer`) and gives the
model one repair round (:func:`repair_message`) before it fails the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from agents_mcp.errors import InvalidRequest
from agents_mcp.messages import LLMRequest, Message

ANSWER_TOOL = "final_answer"
"""The tool Anthropic's models give a structured answer through: its input is the answer."""

ANSWER_TOOL_DESCRIPTION = (
    "Give your final answer. Its input is the answer itself, as the JSON Schema requires."
    " Call it once, when you are done, instead of answering in text."
)

MAX_ERRORS = 5
"""Validation errors shown to the model (and in the run's error) at most."""

_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?```\Z", re.DOTALL)
_NAME = re.compile(r"[^A-Za-z0-9_-]+")

# The JSON Schema keywords OpenAI's strict mode (Chat Completions and Responses) accepts.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "description",
        "title",
        "pattern",
        "format",
        "multipleOf",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "minItems",
        "maxItems",
    }
)
_ROOT_ONLY = frozenset({"$schema", "$id"})
_STRICT_DEPTH = 10
"""Nesting levels strict mode allows."""


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON Schema object, or None when it is."""
    if not isinstance(schema, Mapping):
        return f"must be a JSON Schema object, got {type(schema).__name__}"
    from jsonschema import validators  # on first use: importing it takes a while
    from jsonschema.exceptions import SchemaError

    cls = validators.validator_for(dict(schema))
    try:
        cls.check_schema(dict(schema))
    except SchemaError as exc:
        where = "".join(f"[{p!r}]" for p in exc.absolute_path) or "(root)"
        return f"is not a valid JSON Schema: at {where}: {_short(exc.message)}"
    return None


MAX_CALLER_SCHEMA = 65_536
"""Characters of JSON a caller's ``output_schema`` may have."""
MAX_CHECKED = 1_000_000
"""Characters of an answer checked against a schema; a longer one is refused."""


def require_schema(
    schema: Any, what: str = "output_schema", *, from_caller: bool = False
) -> dict[str, Any]:
    """``schema`` as a dict, or :class:`InvalidRequest` saying what is wrong with it.

    ``from_caller``: the schema comes with a request, not from the operator's config, so
    it may not use regular expressions (``pattern``, ``patternProperties``): one made to
    backtrack would hold the server for minutes while an answer is checked.
    """
    problem = schema_problem(schema)
    if problem is None and from_caller:
        problem = _caller_problem(schema)
    if problem is not None:
        raise InvalidRequest(f"{what} {problem}")
    return dict(schema)


def _caller_problem(schema: Any) -> str | None:
    if len(json.dumps(schema)) > MAX_CALLER_SCHEMA:
        return f"is over {MAX_CALLER_SCHEMA} characters of JSON; put a schema that big in the agent's config"
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key in ("pattern", "patternProperties"):
                if key in node:
                    return (
                        f"uses {key!r}, which a schema sent with a request may not (a regular"
                        " expression can make checking an answer take minutes); describe the"
                        " format in a description, or put the schema in the agent's config"
                    )
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


@dataclass(frozen=True)
class Checked:
    """An answer checked against a schema: ``text`` and ``value`` when valid, else ``errors``."""

    text: str | None
    """The answer's JSON text (without a code fence the model put around it)."""
    value: Any
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_answer(text: str | None, schema: Mapping[str, Any]) -> Checked:
    """Parse ``text`` as JSON and validate it against ``schema``."""
    body = json_text(text)
    if not body:
        return Checked(None, None, ("the answer is empty; it must be a JSON value",))
    if len(body) > MAX_CHECKED:
        return Checked(
            None, None, (f"the answer is over {MAX_CHECKED} characters; answer shorter",)
        )
    try:
        value = json.loads(body)
    except ValueError as exc:
        return Checked(None, None, (f"the answer is not JSON: {exc}",))
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)
    found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    errors = tuple(f"{e.json_path}: {_short(e.message)}" for e in found[:MAX_ERRORS])
    if len(found) > MAX_ERRORS:
        errors += (f"… and {len(found) - MAX_ERRORS} more",)
    return Checked(body, value, errors) if not errors else Checked(None, None, errors)


def json_text(text: str | None) -> str:
    """``text`` stripped, and without a Markdown code fence around all of it."""
    body = (text or "").strip()
    fenced = _FENCE.match(body)
    return fenced["body"].strip() if fenced else body


def parse_output(text: str | None) -> Any:
    """The value of an answer that passed :func:`check_answer` (None if it is not JSON)."""
    try:
        return json.loads(json_text(text))
    except ValueError:
        return None


def instructions(schema: Mapping[str, Any]) -> str:
    """What the system prompt says when the provider cannot take ``schema`` natively."""
    return (
        "Your final answer (your reply once you need no more tools) must be one JSON value"
        " valid against the JSON Schema below, and nothing else: no other text, no code"
        f" fence.\nJSON Schema: {json.dumps(schema, separators=(',', ':'))}"
    )


def tool_instructions() -> str:
    """What the system prompt says when the answer goes through :data:`ANSWER_TOOL`."""
    return (
        f"When you have your final answer, give it by calling the {ANSWER_TOOL} tool: its"
        " input is your answer. Do not answer in text."
    )


def repair_message(errors: tuple[str, ...]) -> str:
    """What the model is told after an answer that does not meet the schema."""
    listed = "\n".join(f"- {e}" for e in errors)
    return (
        f"Your final answer does not match the JSON Schema it must meet:\n{listed}\n"
        "Give your final answer again, corrected, the same way: the JSON value only."
    )


def repair_request(request: LLMRequest, answer: Message, errors: tuple[str, ...]) -> LLMRequest:
    """``request`` again, with the answer that failed and the errors it has."""
    said = Message(
        role="assistant", content=answer.content, reasoning_payload=answer.reasoning_payload
    )
    told = Message(role="user", content=repair_message(errors))
    return replace(request, messages=[*request.messages, said, told])


def rejection(errors: tuple[str, ...]) -> str:
    """What the thread records (as an ``event``) about an answer that failed."""
    return (
        f"the answer did not match the output schema ({'; '.join(errors)});"
        " the model was asked to correct it"
    )


def name_of(schema: Mapping[str, Any]) -> str:
    """A name for the schema where an API wants one (``^[A-Za-z0-9_-]{1,64}$``)."""
    title = schema.get("title")
    name = _NAME.sub("_", title).strip("_")[:64] if isinstance(title, str) else ""
    return name or "answer"


def wire_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` as sent to a provider: without ``$schema``/``$id``, which some refuse."""
    return {k: v for k, v in schema.items() if k not in _ROOT_ONLY}


def tool_compatible(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` can be a tool's ``input_schema`` (Anthropic wants an object)."""
    return schema.get("type") == "object"


def strict_compatible(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict structured outputs take ``schema`` as it is.

    The root is an object; every object lists all its properties in ``required`` and sets
    ``additionalProperties: false``; only the keywords strict mode supports are used. A
    schema that does not meet these rules is not rewritten (that would change what it
    allows): it is asked for through instructions instead.
    """
    if schema.get("type") != "object" or "anyOf" in schema:
        return False
    return _strict(wire_schema(schema), 1)


def _strict(node: Any, depth: int) -> bool:
    if not isinstance(node, Mapping) or depth > _STRICT_DEPTH:
        return False
    if not set(node) <= _STRICT_KEYWORDS:
        return False
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    children: list[Any] = []
    if "object" in kinds or "properties" in node:
        props = node.get("properties", {})
        if not isinstance(props, Mapping) or node.get("additionalProperties") is not False:
            return False
        if sorted(node.get("required", [])) != sorted(props):
            return False
        children += props.values()
    if "items" in node:
        children.append(node["items"])
    for key in ("anyOf",):
        children += node.get(key) or []
    for key in ("$defs", "definitions"):
        children += (node.get(key) or {}).values()
    return all(_strict(child, depth + 1) for child in children)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
