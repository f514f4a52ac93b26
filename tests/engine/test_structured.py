"""Structured answers: a JSON Schema per call or per agent, asked for natively where each
provider can take it, checked, repaired once, else the run fails ``output_invalid``.

Each provider's adapter runs against its wire-format fake over loopback HTTP, behind a real
MCP client talking to ``create_server`` in memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from inline_snapshot import snapshot

from agents_mcp import structured
from agents_mcp.config import config_from_dict
from agents_mcp.errors import ConfigError, InvalidRequest
from agents_mcp.server.app import create_server
from agents_mcp.testing import Call, ScriptedLLM
from agents_mcp.testing.anthropic_server import FakeAnthropicServer
from agents_mcp.testing.chat_server import FakeChatServer
from agents_mcp.testing.fake_server import FakeServer
from agents_mcp.testing.responses_server import FakeResponsesServer
from tests.conftest import call
from tests.downstream_server import make_server
from tests.reading import text_of

pytestmark = pytest.mark.anyio

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
"""Meets OpenAI's strict mode and is an object: every provider takes it natively."""
TAGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
"""No provider takes it natively: an array at the root, and ``minLength``."""

FAKES: dict[str, type[FakeServer]] = {
    "openai": FakeChatServer,
    "anthropic": FakeAnthropicServer,
    "responses": FakeResponsesServer,
}


@pytest.fixture(params=list(FAKES))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def answer(provider: str, value: Any, *, native: bool = True) -> str | Call:
    """How the model gives ``value`` as its answer: Anthropic's through the answer tool."""
    if provider == "anthropic" and native:
        return Call(structured.ANSWER_TOOL, value, id="toolu_answer")
    return json.dumps(value)


@asynccontextmanager
async def serve(
    tmp_path: Path, provider: str, llm: ScriptedLLM, **agent: Any
) -> AsyncIterator[tuple[Client[Any], FakeServer]]:
    """A real MCP client, an agents-mcp in memory, the provider's fake behind the model."""
    fake = FAKES[provider](llm)
    async with fake.serve() as base_url:
        model = {"provider": provider, "base_url": base_url, "model": "m", "api_key": "k"}
        helper = {
            "description": "Reports the weather",
            "instructions": "Be brief.",
            "model": "main",
            "servers": ["notes"],
            "require_approval": "never",
            **agent,
        }
        cfg = config_from_dict(
            {
                "mcpServers": {"notes": {"command": "unused"}},
                "models": {"main": model},
                "agents": {"helper": helper},
            },
            path=tmp_path / "agents.toml",
        )
        servers: dict[str, FastMCP] = {"notes": make_server("notes")}
        mcp = create_server(cfg, db_path=tmp_path / "t.db", transports=servers)
        async with Client(mcp) as client:
            yield client, fake


def system_text(provider: str, body: dict[str, Any]) -> str:
    if provider == "openai":
        return "".join(m["content"] for m in body["messages"] if m["role"] == "system")
    if provider == "anthropic":
        return "".join(b["text"] for b in body.get("system", []))
    return str(body.get("instructions", ""))


def native_format(provider: str, body: dict[str, Any]) -> Any:
    """How the request asks for the schema natively (None: it does not)."""
    if provider == "openai":
        return body.get("response_format")
    if provider == "responses":
        return body.get("text", {}).get("format")
    tools = [t for t in body.get("tools", []) if t["name"] == structured.ANSWER_TOOL]
    if not tools:
        return None
    return {"input_schema": tools[0]["input_schema"], "tool_choice": body.get("tool_choice")}


NATIVE = {
    "openai": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": WEATHER, "strict": True},
    },
    "responses": {"type": "json_schema", "name": "answer", "schema": WEATHER, "strict": True},
    "anthropic": {"input_schema": WEATHER, "tool_choice": {"type": "any"}},
}


async def test_a_valid_answer_the_first_time(tmp_path: Path, provider: str) -> None:
    paris = {"city": "Paris", "celsius": 21.5}
    llm = ScriptedLLM(Call("notes__echo", {"text": "Paris"}, id="toolu_1"), answer(provider, paris))
    async with serve(tmp_path, provider, llm) as (client, fake):
        with anyio.fail_after(30):
            result = await client.call_tool(
                "chat_with_agent",
                {"agent": "helper", "message": "Weather in Paris?", "output_schema": WEATHER},
            )
    payload = result.structured_content
    assert payload is not None
    assert (payload["status"], payload["output"]) == ("completed", paris)
    assert json.loads(payload["reply"]) == paris
    assert text_of(result.content[0]).startswith('{"city": "Paris"')
    # Asked natively on every request (the tool step too), with no instructions added.
    assert [native_format(provider, body) for body in fake.requests] == [NATIVE[provider]] * 2
    assert all("JSON Schema" not in system_text(provider, body) for body in fake.requests)
    if provider == "anthropic":  # the answer tool's call is the answer, not a call to run
        assert "final_answer" in system_text(provider, fake.requests[0])
    llm.assert_complete()


async def test_one_repair_round_with_the_errors(tmp_path: Path, provider: str) -> None:
    llm = ScriptedLLM(
        answer(provider, {"city": "Paris", "celsius": "warm"}),
        answer(provider, {"city": "Paris", "celsius": 21}),
    )
    async with serve(tmp_path, provider, llm) as (client, _):
        payload = await call(
            client,
            "chat_with_agent",
            agent="helper",
            message="Weather in Paris?",
            output_schema=WEATHER,
        )
        shown = await call(
            client, "get_thread", thread_id=payload["thread_id"], include_messages=True
        )
    assert (payload["status"], payload["output"]) == ("completed", {"city": "Paris", "celsius": 21})
    assert shown["output"] == payload["output"]  # get_thread returns it too
    assert payload["usage"]["llm_requests"] == 2
    repair = llm.requests[1].messages
    assert [m.role for m in repair] == ["user", "assistant", "user"]
    assert repair[-1].content == snapshot("""\
Your final answer does not match the JSON Schema it must meet:
- $.celsius: 'warm' is not of type 'number'
Give your final answer again, corrected, the same way: the JSON value only.\
""")
    # The thread keeps the rejected answer (as an error) and why; the model never sees it again.
    kept = [(m["role"], m["status"], m["content"]) for m in shown["messages"]]
    assert kept == snapshot(
        [
            ("user", "complete", "Weather in Paris?"),
            ("assistant", "error", '{"city": "Paris", "celsius": "warm"}'),
            (
                "event",
                "complete",
                "the answer did not match the output schema ($.celsius: 'warm' is not of type 'number'); the model was asked to correct it",
            ),
            ("assistant", "complete", '{"city": "Paris", "celsius": 21}'),
        ]
    )


async def test_invalid_twice_fails_the_run_with_a_clear_error(
    tmp_path: Path, provider: str
) -> None:
    llm = ScriptedLLM(
        answer(provider, {"city": "Paris"}),
        answer(provider, {"city": "Paris", "celsius": 21, "wind": 3}),
        answer(provider, {"city": "Paris", "celsius": 21}),
    )
    async with serve(tmp_path, provider, llm) as (client, _):
        failed = await call(
            client, "chat_with_agent", agent="helper", message="Weather?", output_schema=WEATHER
        )
        again = await call(
            client,
            "chat_with_agent",
            agent="helper",
            message="Try once more",
            thread_id=failed["thread_id"],
            output_schema=WEATHER,
        )
    assert failed["status"] == "failed"
    assert "output" not in failed
    assert failed["error"] == snapshot(
        {
            "type": "output_invalid",
            "message": "the agent's answer does not match the output schema, also after one correction: $: Additional properties are not allowed ('wind' was unexpected); send a message to continue",
        }
    )
    # Rejected answers are not part of what the model sees next.
    assert [m.content for m in llm.requests[2].messages] == ["Weather?", "Try once more"]
    assert again["output"] == {"city": "Paris", "celsius": 21}


async def test_a_schema_the_provider_cannot_take_goes_in_the_instructions(
    tmp_path: Path, provider: str
) -> None:
    fenced = "```json\n" + json.dumps(["rain", "wind"]) + "\n```"
    llm = ScriptedLLM(json.dumps([]), fenced)
    async with serve(tmp_path, provider, llm) as (client, fake):
        payload = await call(
            client, "chat_with_agent", agent="helper", message="Tags?", output_schema=TAGS
        )
    assert payload["output"] == ["rain", "wind"]
    assert payload["reply"] == '["rain", "wind"]'  # the fence is not part of the answer
    assert [native_format(provider, body) for body in fake.requests] == [None, None]
    assert system_text(provider, fake.requests[0]) == snapshot(
        'Be brief.\n\nYour final answer (your reply once you need no more tools) must be one JSON value valid against the JSON Schema below, and nothing else: no other text, no code fence.\nJSON Schema: {"type":"array","items":{"type":"string","minLength":1},"minItems":1}'
    )
    assert "$: [] should be non-empty" in (llm.requests[1].messages[-1].content or "")


async def test_the_agent_declares_a_schema_and_a_call_overrides_it(
    tmp_path: Path, provider: str
) -> None:
    schema_file = tmp_path / "weather.json"
    schema_file.write_text(json.dumps(WEATHER))
    llm = ScriptedLLM(
        answer(provider, {"city": "Oslo", "celsius": -3}),
        answer(provider, ["snow"], native=False),
    )
    async with serve(tmp_path, provider, llm, output_schema_file=str(schema_file)) as (client, _):
        first = await call(client, "chat_with_agent", agent="helper", message="Oslo?")
        tid = first["thread_id"]
        second = await call(
            client, "chat_with_agent", agent="helper", message="Tags?", thread_id=tid,
            output_schema=TAGS,
        )  # fmt: skip
        with pytest.raises(ToolError) as refused:
            await client.call_tool(
                "chat_with_agent",
                {"agent": "helper", "message": "x", "output_schema": {"type": "nope"}},
            )
    assert first["output"] == {"city": "Oslo", "celsius": -3}
    assert second["output"] == ["snow"]
    assert str(refused.value) == snapshot(
        "output_schema is not a valid JSON Schema: at ['type']: 'nope' is not valid under any of the given schemas"
    )
    llm.assert_complete()


async def test_anthropic_with_thinking_answers_through_the_tool_without_forcing_it(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(Call(structured.ANSWER_TOOL, {"city": "Rome", "celsius": 30}))
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    fake = FakeAnthropicServer(llm)
    async with fake.serve() as base_url:
        cfg = config_from_dict(
            {
                "models": {
                    "main": {
                        "provider": "anthropic",
                        "base_url": base_url,
                        "model": "claude",
                        "extra": thinking,
                    }
                },
                "agents": {"helper": {"description": "d", "model": "main"}},
            },
            path=tmp_path / "agents.toml",
        )
        async with Client(create_server(cfg, db_path=tmp_path / "t.db")) as client:
            payload = await call(
                client, "chat_with_agent", agent="helper", message="Rome?", output_schema=WEATHER
            )
    assert payload["output"] == {"city": "Rome", "celsius": 30}
    body = fake.requests[0]
    assert body["tool_choice"] == {"type": "auto"}  # the API refuses a forced tool with thinking
    assert [t["name"] for t in body["tools"]] == [structured.ANSWER_TOOL]


def test_config_schemas_are_checked_where_they_are_written(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"type": 3}')
    (tmp_path / "broken.json").write_text("{")
    base = {"description": "d", "model": "m"}

    def problems(**agents: dict[str, Any]) -> str:
        data = {"models": {"m": {"provider": "demo"}}, "agents": agents}
        with pytest.raises(ConfigError) as caught:
            config_from_dict(data, path=tmp_path / "agents.toml")
        return str(caught.value).replace(str(tmp_path), "<dir>")

    inline = problems(
        a={**base, "output_schema": {"type": "object", "required": "x"}},
        b={**base, "output_schema": {}, "output_schema_file": "bad.json"},
    )
    files = problems(
        c={**base, "output_schema_file": "bad.json"},
        d={**base, "output_schema_file": "broken.json"},
        e={**base, "output_schema_file": "missing.json"},
    )
    assert inline == snapshot("""\
<dir>/agents.toml: agents.a.output_schema: is not a valid JSON Schema: at ['required']: 'x' is not of type 'array'
<dir>/agents.toml: agents.b.output_schema_file: set output_schema or output_schema_file, not both\
""")
    assert files == snapshot("""\
<dir>/agents.toml: agents.c.output_schema_file: <dir>/bad.json: is not a valid JSON Schema: at ['type']: 3 is not valid under any of the given schemas
<dir>/agents.toml: agents.d.output_schema_file: <dir>/broken.json is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)
<dir>/agents.toml: agents.e.output_schema_file: cannot read <dir>/missing.json: No such file or directory\
""")


# --- the rules, one by one ------------------------------------------------------------------


def test_strict_mode_takes_only_schemas_that_meet_its_rules() -> None:
    nested = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/$defs/item"},
                "minItems": 1,
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["items", "note"],
        "additionalProperties": False,
        "$defs": {
            "item": {
                "type": "object",
                "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
                "required": ["n"],
                "additionalProperties": False,
            }
        },
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
    optional = {**WEATHER, "required": ["city"]}
    open_ended = {k: v for k, v in WEATHER.items() if k != "additionalProperties"}
    length = {**WEATHER, "properties": {**WEATHER["properties"], "city": {"minLength": 1}}}
    assert structured.strict_compatible(WEATHER)
    assert structured.strict_compatible(nested)
    assert not structured.strict_compatible(optional)
    assert not structured.strict_compatible(open_ended)
    assert not structured.strict_compatible(length)
    assert not structured.strict_compatible(TAGS)
    assert not structured.strict_compatible({"anyOf": [WEATHER], "type": "object"})
    assert "$schema" not in structured.wire_schema(nested)
    assert structured.name_of({"title": "Weather report!"}) == "Weather_report"


def test_answers_are_parsed_leniently_and_checked_strictly() -> None:
    assert structured.check_answer(' ```json\n{"a": 1}\n``` ', {"type": "object"}).value == {"a": 1}
    assert structured.check_answer("Sure! {}", {}).errors == (
        "the answer is not JSON: Expecting value: line 1 column 1 (char 0)",
    )
    assert structured.check_answer(None, {}).errors == (
        "the answer is empty; it must be a JSON value",
    )
    many = structured.check_answer("[1, 2, 3, 4, 5, 6, 7]", {"items": {"type": "string"}})
    assert many.errors[-1] == "… and 2 more"
    assert len(many.errors) == structured.MAX_ERRORS + 1
    with pytest.raises(InvalidRequest, match="must be a JSON Schema object, got list"):
        structured.require_schema([])


def test_a_callers_schema_may_not_hold_regular_expressions() -> None:
    """A pattern made to backtrack ("^(a+)+$" against "aaa…!") would hold the server for
    minutes while an answer is checked; the operator's own schemas may use them."""
    evil = {"type": "string", "pattern": "^(a+)+$"}
    nested = {"type": "object", "properties": {"x": {"patternProperties": {"^a": {}}}}}
    with pytest.raises(InvalidRequest, match="uses 'pattern', which a schema sent with a request"):
        structured.require_schema(evil, from_caller=True)
    with pytest.raises(InvalidRequest, match="uses 'patternProperties'"):
        structured.require_schema(nested, from_caller=True)
    with pytest.raises(InvalidRequest, match="put a schema that big in the agent's config"):
        structured.require_schema({"enum": ["x" * 70_000]}, from_caller=True)
    assert structured.require_schema(evil) == evil  # from the config: trusted
    long = structured.check_answer('"' + "a" * 1_000_001 + '"', {"type": "string"})
    assert long.errors == ("the answer is over 1000000 characters; answer shorter",)
