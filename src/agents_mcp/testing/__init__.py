"""Test doubles for agents-mcp and for its users' own tests.

* :class:`ScriptedLLM` answers from a script: text, tool calls, an exception, or a function
  of the request. It records every request and fails loudly on an unexpected extra call.
* :class:`DemoLLM` is the bundled ``provider = "demo"`` model: deterministic, no API key.
* :func:`block_real_llms` fails a test that would reach a real (non-loopback) LLM endpoint.
* ``chat_server.FakeChatServer``, ``anthropic_server.FakeAnthropicServer`` and
  ``responses_server.FakeResponsesServer`` (in this package) speak the real Chat
  Completions, Anthropic Messages and Responses wire formats over HTTP, backed by any of
  the models above, with injectable faults (``fake_server.Fault``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agents_mcp.llm import TextCallback
from agents_mcp.llm.demo import DemoLLM
from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage

__all__ = ["Call", "DemoLLM", "RealLLMBlocked", "ScriptedLLM", "block_real_llms"]


@dataclass(frozen=True)
class Call:
    """A tool call for a script: ``Call("fs__read_file", {"path": "a.txt"})``.

    ``arguments`` may be a dict (sent as JSON) or a raw string (to script invalid JSON).
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict[str, Any])
    id: str | None = None

    def to_tool_call(self) -> ToolCall:
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        return ToolCall(
            id=self.id or f"call_{secrets.token_hex(4)}", name=self.name, arguments=args
        )


Answer = str | Call | list[Call] | LLMResponse
"""What a model says in one step: a final answer, tool calls, or a whole response."""
Responder = Callable[[LLMRequest], Answer | Awaitable[Answer]]
ScriptStep = Answer | BaseException | Responder


class ScriptedLLM:
    """An LLM that follows a script, one step per request.

    Steps: a ``str`` (final answer), a :class:`Call` or a list of them (tool calls), an
    ``LLMResponse``, an exception instance (raised), or a function of the request returning
    any of the first four kinds (sync or async). Every request is kept in ``requests``.
    """

    def __init__(self, *steps: ScriptStep, usage: Usage | None = None) -> None:
        self._steps: list[ScriptStep] = list(steps)
        self.requests: list[LLMRequest] = []
        self.usage = usage or Usage(input_tokens=10, output_tokens=5)

    def add(self, *steps: ScriptStep) -> None:
        self._steps.extend(steps)

    @property
    def remaining(self) -> int:
        return len(self._steps)

    def assert_complete(self) -> None:
        assert not self._steps, f"{len(self._steps)} scripted step(s) were never requested"

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        self.requests.append(request)
        if not self._steps:
            raise AssertionError(
                f"ScriptedLLM got request #{len(self.requests)} but its script is exhausted"
            )
        step = self._steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        if callable(step) and not isinstance(step, Call):
            out = step(request)
            step = await out if isinstance(out, Awaitable) else out
        response = self._response(step)
        if on_text is not None and response.content:
            await on_text(response.content)
        return response

    def _response(self, step: Answer) -> LLMResponse:
        if isinstance(step, LLMResponse):
            return step
        if isinstance(step, str):
            return LLMResponse(content=step, usage=self.usage, finish_reason="stop")
        calls = [step] if isinstance(step, Call) else step
        if isinstance(calls, list):
            return LLMResponse(
                content=None,
                tool_calls=tuple(c.to_tool_call() for c in calls),
                usage=self.usage,
                finish_reason="tool_calls",
            )
        raise TypeError(f"unsupported script step: {step!r}")


class RealLLMBlocked(AssertionError):
    """A test tried to reach an LLM endpoint that is not on this machine."""


@contextmanager
def block_real_llms() -> Iterator[None]:
    """Fail any request of an HTTP model adapter to a non-loopback host inside this block.

    Covers every provider (Chat Completions, Anthropic, Responses). Fakes keep working:
    they listen on 127.0.0.1, and a model built with an in-process ``transport=`` never
    touches the network.
    """
    from agents_mcp.llm.endpoint import HTTPModel

    original = HTTPModel.complete

    async def guarded(
        self: HTTPModel, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse:
        host = urlsplit(self.base_url).hostname or ""
        if not self.in_process and host not in ("127.0.0.1", "localhost", "::1"):
            raise RealLLMBlocked(f"test tried to reach a real LLM at {self.base_url}")
        return await original(self, request, on_text=on_text)

    HTTPModel.complete = guarded  # type: ignore[method-assign]
    try:
        yield
    finally:
        HTTPModel.complete = original  # type: ignore[method-assign]
