"""What the fake provider endpoints share: serving on loopback, recording, auth, faults.

A fake (``FakeChatServer``, ``FakeAnthropicServer``, ``FakeResponsesServer``) is a Starlette
app backed by any :class:`~agents_mcp.llm.LLM`: it parses the provider's request body into
an :class:`LLMRequest`, asks the backing LLM, and renders its answer in the provider's
format, whole or as a stream of events. It records every request and answers injected
:class:`Fault` s first, in the provider's own error format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agents_mcp.errors import LLMError
from agents_mcp.llm import LLM
from agents_mcp.messages import LLMRequest, LLMResponse

log = logging.getLogger("agents_mcp.testing")

CREATED = 1_700_000_000  # fixed so recorded responses are deterministic


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One injected failure; it answers the next request instead of the backing LLM.

    Exactly one of:

    * ``status``: an HTTP error in the provider's error format, or with ``body`` (a dict is
      sent as JSON, a string as text), with optional ``Retry-After`` / ``retry-after-ms``;
    * ``truncate``: a stream that stops before the provider's end marker (a non-streaming
      request gets half a JSON body);
    * ``malformed``: an event (or a body) that is not JSON;
    * ``stream_error``: the error the provider reports inside a stream (Anthropic:
      ``overloaded_error``; Responses: ``response.failed`` with ``server_error``; Chat
      Completions: an error chunk with code 500); a non-streaming request gets the HTTP
      error that goes with it;
    * ``hang``: the response starts (a stream sends its first bytes) and then nothing more
      comes until the server stops.
    """

    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    body: dict[str, Any] | str | None = None
    truncate: bool = False
    malformed: bool = False
    stream_error: bool = False
    hang: bool = False

    def __post_init__(self) -> None:
        kinds = (
            self.status is not None,
            self.truncate,
            self.malformed,
            self.stream_error,
            self.hang,
        )
        if sum(kinds) != 1:
            raise ValueError(
                "a Fault needs exactly one of status, truncate, malformed, stream_error or hang"
            )


class Rejected(Exception):
    """The request breaks a rule of the provider's API; answered with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeServer:
    """The shared half of a fake provider endpoint; subclasses speak the wire format.

    ``requests`` holds every JSON body received and ``request_headers`` the matching
    headers. ``faults`` are consumed one per request, before the LLM is asked. With
    ``api_key`` set, requests without that key (where the provider expects it) get a 401.
    """

    paths: ClassVar[tuple[str, ...]]

    def __init__(self, llm: LLM, *, api_key: str | None = None) -> None:
        self.llm = llm
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.faults: list[Fault] = []
        self._released: anyio.Event | None = None  # set when serve() stops: hangs end
        self.app = Starlette(routes=[Route(p, self._handle, methods=["POST"]) for p in self.paths])

    # --- what a subclass provides -----------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def header_problem(self, request: Request) -> str | None:
        """What is wrong with the request's headers (beyond auth), if anything."""
        return None

    def error_response(self, status: int, message: str, **headers: str) -> Response:
        raise NotImplementedError

    def parse_request(self, body: dict[str, Any]) -> LLMRequest:
        """The request body as an :class:`LLMRequest`; raise :class:`Rejected` for API rule
        violations (KeyError, TypeError and ValueError become a 400 too)."""
        raise NotImplementedError

    def render(self, response: LLMResponse, body: dict[str, Any]) -> Response:
        """The backing LLM's answer in the provider's format, streamed if ``body`` asks."""
        raise NotImplementedError

    def fault_events(self, fault: Fault, body: dict[str, Any]) -> list[str]:
        """SSE events for a ``truncate``/``malformed``/``stream_error`` fault on a stream."""
        raise NotImplementedError

    def fault_error_status(self) -> int:
        """The HTTP status a non-streaming request gets for a ``stream_error`` fault."""
        return 500

    def partial_body(self, body: dict[str, Any]) -> str:
        """A complete non-streaming body, which ``truncate`` cuts in half."""
        raise NotImplementedError

    def malformed_body(self) -> str:
        """A non-streaming body that is not JSON (``malformed``)."""
        return '{"id": '

    def streams(self, body: dict[str, Any]) -> bool:
        return bool(body.get("stream"))

    # --- serving ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on a free loopback port in this event loop; yield the ``…/v1`` base URL."""
        # Bind and listen before uvicorn starts so the URL is valid immediately: early
        # connections wait in the backlog instead of being refused.
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every response on a kept-alive connection waits 40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        server = _EmbeddedServer(config)
        stopped = anyio.Event()
        # Shielded so an outer cancellation still gets a graceful shutdown; cancelled by
        # hand only if that shutdown overruns.
        serve_scope = anyio.CancelScope(shield=True)

        async def run() -> None:
            try:
                with serve_scope:
                    await server.serve(sockets=[sock])
            finally:
                stopped.set()

        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                try:
                    yield f"http://127.0.0.1:{port}/v1"
                except BaseException as exc:
                    # Re-raised below, outside the task group, so the caller sees its own
                    # exception rather than an ExceptionGroup around it.
                    failure = exc
                finally:
                    self._hangs().set()  # hung responses end now
                    server.should_exit = True
                    server.stopping.set()
                    with anyio.move_on_after(5, shield=True):
                        await stopped.wait()
                    serve_scope.cancel()
        finally:
            # Close asyncio's listeners before the socket: a closed fd that is still
            # registered with the selector breaks the next server that reuses the number.
            for listener in server.servers:
                listener.close()
            sock.close()
            self._released = None
        if failure is not None:
            raise failure

    async def _handle(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.error_response(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self.error_response(400, "The request body must be a JSON object.")
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))
        if self.api_key is not None and not self.authorized(request):
            return self.error_response(401, "Incorrect API key provided.")
        if (problem := self.header_problem(request)) is not None:
            return self.error_response(400, problem)
        if self.faults:
            return await self._fault_response(self.faults.pop(0), body)
        try:
            llm_request = self.parse_request(body)
        except Rejected as exc:
            return self.error_response(exc.status, str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return self.error_response(400, f"Invalid request: {exc!r}")
        try:
            response = await self.llm.complete(llm_request)
        except LLMError as exc:
            return self.error_response(exc.status or 500, str(exc))
        except Exception as exc:
            # Surface scripted-LLM failures to the client instead of a bare 500 page.
            log.exception("fake %s: backing LLM failed", type(self).__name__)
            return self.error_response(500, f"{type(exc).__name__}: {exc}")
        return self.render(response, body)

    async def _fault_response(self, fault: Fault, body: dict[str, Any]) -> Response:
        stream = self.streams(body)
        if fault.status is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = fault.retry_after
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = fault.retry_after_ms
            if isinstance(fault.body, str):
                return Response(fault.body, fault.status, headers, media_type="text/plain")
            if fault.body is not None:
                return JSONResponse(fault.body, fault.status, headers)
            return self.error_response(
                fault.status, f"Injected fault: HTTP {fault.status}", **headers
            )
        if fault.hang:
            if stream:
                return sse([": fake keep-alive"], until=self._hangs())
            await self._hangs().wait()
            return self.error_response(500, "released at shutdown")
        if stream:
            return sse(self.fault_events(fault, body))
        if fault.stream_error:
            return self.error_response(self.fault_error_status(), "Injected fault: stream error")
        if fault.truncate:
            text = self.partial_body(body)
            return Response(text[: len(text) // 2], 200, media_type="application/json")
        return Response(self.malformed_body(), 200, media_type="application/json")

    def _hangs(self) -> anyio.Event:
        if self._released is None:
            self._released = anyio.Event()
        return self._released


def split(text: str | None, parts: int = 3, *, pad: bool = False) -> list[str]:
    """Cut ``text`` into up to ``parts`` fragments (exactly ``parts`` when ``pad``)."""
    text = text or ""
    size = max(1, -(-len(text) // parts))
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return pieces + [""] * (parts - len(pieces)) if pad else pieces


def event(data: dict[str, Any], name: str | None = None) -> str:
    """One SSE event (without its blank-line terminator)."""
    payload = f"data: {json.dumps(data)}"
    return f"event: {name}\n{payload}" if name else payload


def sse(events: list[str], *, until: anyio.Event | None = None) -> StreamingResponse:
    """A ``text/event-stream`` response of ``events``; with ``until``, it then waits for it."""

    async def body() -> AsyncIterator[str]:
        for item in events:
            yield item + "\n\n"
        if until is not None:
            await until.wait()

    return StreamingResponse(body(), media_type="text/event-stream")


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stopping = anyio.Event()

    async def main_loop(self) -> None:
        # Wake on ``stopping`` instead of uvicorn's 100 ms polling so teardown is quick;
        # one tick still sets the default response headers.
        await self.on_tick(0)
        await self.stopping.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown always sleeps 100 ms; a test suite starting many fakes can't
        # afford that, so poll briefly for open connections instead (lifespan is off).
        for listener in self.servers:
            listener.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with anyio.move_on_after(self.config.timeout_graceful_shutdown or 5):
            # uvicorn offers no event for "all connections closed"; polling is the only way.
            while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The hosting process (pytest) owns SIGINT/SIGTERM; don't take them over.
        yield
