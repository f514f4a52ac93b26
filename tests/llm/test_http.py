"""What a model's HTTP requests do on the wire, against real sockets.

A small HTTP/1.1 server on loopback (plain or TLS) stands in for a provider, so that
connection reuse, timeouts, requests given up on, TLS trust, proxies, cookies and how each
failure reaches the user are the real thing, through httpx2's client as agents-mcp uses it.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents_mcp.errors import LLMError
from agents_mcp.llm.chat import OpenAIChatModel
from agents_mcp.llm.failures import WrongEndpoint
from agents_mcp.messages import LLMRequest, Message

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Given a request's body, writes the response; returns whether to keep the connection."""


async def ok(body: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return True


@dataclass
class Provider:
    """What the loopback server saw: one entry per connection, the bodies it read."""

    answer: Answer = ok
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the test is over: answers that hang end."""
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def hang(self) -> None:
        await self.released.wait()
        raise ConnectionError("the test is over")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.heads.append(head)
                self.bodies.append(body)
                keep = await self.answer(body, writer)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            await writer.wait_closed()
            self.closed.set()


@asynccontextmanager
async def serving(provider: Provider, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    server = await asyncio.start_server(provider.serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://localhost:{port}"
    finally:
        provider.released.set()
        server.close()
        if provider.handlers:
            await asyncio.wait_for(asyncio.gather(*provider.handlers), 5)


def completion(text: str, *headers: bytes) -> Answer:
    """Answers every request with a Chat Completions answer saying ``text``."""

    async def answer(body: bytes, writer: asyncio.StreamWriter) -> bool:
        payload = json.dumps(
            {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": text}}]}
        ).encode()  # fmt: skip
        head = [b"HTTP/1.1 200 OK", b"Content-Type: application/json", *headers]
        head.append(b"Content-Length: %d" % len(payload))
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + payload)
        return True

    return answer


HELLO = LLMRequest(system="be brief", messages=[Message(role="user", content="hi")])
ANSWER = completion("ok")


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def model(base_url: str, **kwargs: Any) -> OpenAIChatModel:
    kwargs.setdefault("sleep", Sleeps())
    return OpenAIChatModel(base_url=base_url, model="m", **kwargs)


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def test_requests_share_one_kept_alive_connection() -> None:
    provider = Provider(answer=ANSWER)
    async with serving(provider) as url, model(url + "/v1") as llm:
        for _ in range(3):
            assert (await llm.complete(HELLO)).content == "ok"
    assert len(provider.bodies) == 3
    assert provider.connections == 1


async def test_a_connection_the_provider_closed_while_idle_is_not_reused() -> None:
    drop = asyncio.Event()

    async def then_drop(body: bytes, writer: asyncio.StreamWriter) -> bool:
        await ANSWER(body, writer)
        await writer.drain()
        await drop.wait()
        return False  # close the connection the client keeps for its next request

    provider = Provider(answer=then_drop)
    sleeps = Sleeps()
    async with serving(provider) as url, model(url + "/v1", sleep=sleeps) as llm:
        assert (await llm.complete(HELLO)).content == "ok"
        drop.set()
        with anyio.fail_after(5):
            await provider.closed.wait()
        assert (await llm.complete(HELLO)).content == "ok"
    assert provider.connections == 2
    assert (len(provider.bodies), sleeps.delays) == (2, [])  # no attempt failed


async def test_a_long_conversation_arrives_whole() -> None:
    big = "".join(chr(0x20 + n % 95) for n in range(4 * 1024 * 1024))
    provider = Provider(answer=ANSWER)
    request = LLMRequest(system="", messages=[Message(role="user", content=big)])
    async with serving(provider) as url, model(url + "/v1") as llm:
        assert (await llm.complete(request)).content == "ok"
    assert json.loads(provider.bodies[0])["messages"][-1]["content"] == big


async def test_silence_past_the_timeout_says_what_to_do() -> None:
    async def silent(body: bytes, writer: asyncio.StreamWriter) -> bool:
        await provider.hang()
        return False

    provider = Provider(answer=silent)
    async with serving(provider) as url, model(url + "/v1", timeout=0.1, max_retries=0) as llm:
        with pytest.raises(LLMError) as caught:
            await llm.complete(HELLO)
    assert str(caught.value) == (
        f"LLM request failed: {url}/v1: no answer for 0.1 s: the provider may be overloaded;"
        " if the model needs longer, raise its `timeout` in the config"
    )
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)


async def test_an_answer_cut_short_is_retried_on_a_fresh_connection() -> None:
    answers = iter(["cut", "ok"])

    async def flaky(body: bytes, writer: asyncio.StreamWriter) -> bool:
        if next(answers) == "cut":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
            return False
        return await ANSWER(body, writer)

    provider = Provider(answer=flaky)
    sleeps = Sleeps()
    async with serving(provider) as url, model(url + "/v1", sleep=sleeps) as llm:
        assert (await llm.complete(HELLO)).content == "ok"
    assert (provider.connections, len(sleeps.delays)) == (2, 1)


async def test_a_request_given_up_on_is_abandoned_and_the_model_stays_usable() -> None:
    started = asyncio.Event()
    answers = iter(["never", "ok"])

    async def never_once(body: bytes, writer: asyncio.StreamWriter) -> bool:
        if next(answers) == "never":
            started.set()
            return True  # no answer: wait for the next request on this connection
        return await ANSWER(body, writer)

    provider = Provider(answer=never_once)
    async with serving(provider) as url, model(url + "/v1") as llm:
        task = asyncio.create_task(llm.complete(HELLO))
        with anyio.fail_after(5):
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await provider.closed.wait()  # the client closed the connection it gave up on
        assert (await llm.complete(HELLO)).content == "ok"
    assert provider.connections == 2


async def test_nobody_listening_on_this_machine_fails_at_once_saying_what_to_check() -> None:
    async with serving(Provider()) as url:
        pass  # closed: the port is free again
    port = url.rsplit(":", 1)[1]
    sleeps = Sleeps()
    async with model(url + "/v1", max_retries=3, sleep=sleeps) as llm:
        with anyio.fail_after(5), pytest.raises(LLMError) as caught:
            await llm.complete(HELLO)
    assert str(caught.value) == (
        f"LLM request failed: {url}/v1: nothing is listening at localhost:{port} (connection"
        " refused): start the model's server, or correct the port in the model's base_url"
    )
    assert sleeps.delays == []  # not retried: it will not start listening while we wait
    assert isinstance(caught.value.__cause__, httpx2.ConnectError)


async def test_a_connection_refused_elsewhere_is_retried_once_at_most() -> None:
    attempts: list[httpx2.Request] = []

    def refuse(request: httpx2.Request) -> httpx2.Response:
        attempts.append(request)
        # As httpx2 raises it: the operating system's refusal among the causes.
        refusal = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        raise httpx2.ConnectError("All connection attempts failed") from refusal

    transport = httpx2.MockTransport(refuse)
    sleeps = Sleeps()
    base = "https://models.example:8443/v1"
    async with model(base, transport=transport, max_retries=3, sleep=sleeps) as llm:
        with pytest.raises(LLMError) as caught:
            await llm.complete(HELLO)
    assert str(caught.value) == (
        f"LLM request failed: {base}: models.example:8443 refused the connection: check the"
        " host and port in the model's base_url, and that the provider is up"
        " (gave up after 2 attempts)"
    )
    assert len(attempts) == 2 and len(sleeps.delays) == 1


PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>404 Not Found</title>
</head>
<body>
<h1>Not Found</h1>
<p>The requested URL was not found on this server.</p>
<hr>
<address>Apache/2.4.41 (Ubuntu) Server at localhost Port 80</address>
</body>
</html>
"""
"""What a web server answers for a path it does not have."""


def page(status: bytes) -> Answer:
    async def answer(body: bytes, writer: asyncio.StreamWriter) -> bool:
        head = b"HTTP/1.1 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % (status, len(PAGE)) + PAGE)
        return True

    return answer


HINT = (
    "check the model's base_url (requests go to base_url + /chat/completions; it usually"
    " ends in /v1)"
)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("status", [b"404 Not Found", b"405 Method Not Allowed", b"500 Oops"])
async def test_a_web_page_for_an_error_is_one_line_with_the_url_and_not_retried(
    status: bytes, stream: bool
) -> None:
    provider = Provider(answer=page(status))
    sleeps = Sleeps()
    async with serving(provider) as url, model(url, stream=stream, sleep=sleeps) as llm:
        with anyio.fail_after(10), pytest.raises(WrongEndpoint) as caught:
            await llm.complete(HELLO)
    code = status.split()[0].decode()
    assert str(caught.value) == (
        f"LLM request failed: HTTP {code} from {url}/chat/completions: 404 Not Found"
        f" (a web page); {HINT}"
    )
    assert caught.value.status == int(code)
    assert (len(provider.bodies), sleeps.delays) == (1, [])


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_a_web_page_instead_of_an_answer_is_not_the_api(stream: bool) -> None:
    """A web UI at base_url answers 200 with its page: not a stream cut short, not retried."""
    provider = Provider(answer=page(b"200 OK"))
    sleeps = Sleeps()
    async with serving(provider) as url, model(url, stream=stream, sleep=sleeps) as llm:
        with anyio.fail_after(10), pytest.raises(WrongEndpoint) as caught:
            await llm.complete(HELLO)
    assert str(caught.value) == (
        f"LLM request failed: {url}/chat/completions answered with a web page"
        f" (404 Not Found); {HINT}"
    )
    assert (len(provider.bodies), sleeps.delays) == (1, [])


async def test_a_gateways_page_is_still_retried_and_quoted_in_one_line() -> None:
    provider = Provider(answer=page(b"502 Bad Gateway"))
    sleeps = Sleeps()
    async with serving(provider) as url, model(url, max_retries=1, sleep=sleeps) as llm:
        with anyio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.complete(HELLO)
    assert str(caught.value) == (
        f"LLM request failed: HTTP 502 from {url}/chat/completions: 404 Not Found (a web page)"
        " (gave up after 2 attempts)"
    )
    assert len(provider.bodies) == 2


async def test_a_404_from_the_api_hints_at_base_url_and_model() -> None:
    async def no_such_model(body: bytes, writer: asyncio.StreamWriter) -> bool:
        error = b'{"error": {"message": "The model `m` does not exist\\n  or you lack access."}}'
        head = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
        writer.write(head + b"Content-Length: %d\r\n\r\n%s" % (len(error), error))
        return True

    provider = Provider(answer=no_such_model)
    async with serving(provider) as url, model(url) as llm:
        with anyio.fail_after(10), pytest.raises(WrongEndpoint) as caught:
            await llm.complete(HELLO)
    assert str(caught.value) == (
        f"LLM request failed: HTTP 404 from {url}/chat/completions: The model `m` does not"
        " exist or you lack access.; check the model's base_url and model (requests go to"
        " base_url + /chat/completions; it usually ends in /v1)"
    )
    assert len(provider.bodies) == 1


FAILURES = [
    (httpx2.ConnectTimeout(""), True, "no connection within 10 s: check that base_url is"
     " reachable from here (through HTTPS_PROXY or HTTP_PROXY if this network needs one)"),
    (httpx2.WriteTimeout(""), True, "the provider took none of the request for 30 s: it is"
     " overloaded or the network is; try again later"),
    (httpx2.PoolTimeout(""), True, "no free connection for 30 s: more than 100 requests at"
     " once to this model; run fewer agents at once"),
    (httpx2.ReadError("reset by peer"), True, "the connection broke: reset by peer"),
    (httpx2.RemoteProtocolError("illegal header"), True,
     "the provider broke off the answer: illegal header"),
    (httpx2.ProxyError("407 Proxy Authentication Required"), False, "the proxy failed: 407"
     " Proxy Authentication Required: check HTTPS_PROXY, HTTP_PROXY and ALL_PROXY, or"
     " exempt the host with NO_PROXY"),
    (httpx2.UnsupportedProtocol("no scheme"), False,
     "base_url must start with http:// or https://"),
    (httpx2.DecodingError("bad gzip"), False, "the provider's answer could not be decoded:"
     " bad gzip"),
    (httpx2.LocalProtocolError("Illegal header value"), False, "the request could not be"
     " sent: Illegal header value: check the model's api_key and base_url for characters"
     " that cannot go in HTTP"),
    (httpx2.TooManyRedirects("Exceeded maximum allowed redirects."), False,
     "Exceeded maximum allowed redirects."),
]  # fmt: skip


@pytest.mark.parametrize(("error", "retried", "said"), FAILURES, ids=lambda v: type(v).__name__)
async def test_httpx2_failures_become_llm_errors_that_say_what_to_do(
    error: httpx2.HTTPError, retried: bool, said: str
) -> None:
    attempts: list[httpx2.Request] = []

    def fail(request: httpx2.Request) -> httpx2.Response:
        attempts.append(request)
        raise error

    transport = httpx2.MockTransport(fail)
    async with model("http://localhost/v1", transport=transport, max_retries=1) as llm:
        with pytest.raises(LLMError) as caught:
            await llm.complete(HELLO)
    gave_up = " (gave up after 2 attempts)" if retried else ""
    assert str(caught.value) == f"LLM request failed: http://localhost/v1: {said}{gave_up}"
    assert caught.value.__cause__ is error
    assert len(attempts) == (2 if retried else 1)


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """``name``'s certificate signed by the CA "test CA" (itself when ``key is ca_key``)."""
    now = datetime.datetime.now(datetime.UTC)
    is_ca = key is ca_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def _certificates(tmp: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA (written to a file, as ``SSL_CERT_FILE`` names one) and a server context whose
    certificate for ``localhost`` it signed."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, ca_key)
    leaf = _certificate("localhost", key, ca_key)
    ca_file, leaf_file, key_file = tmp / "ca.pem", tmp / "leaf.pem", tmp / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(leaf_file, key_file)
    return ca_file, server


async def test_tls_is_verified_against_the_trust_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ca_file, server = _certificates(tmp_path)
    provider = Provider(answer=ANSWER)
    sleeps = Sleeps()
    async with serving(provider, tls=server) as url:
        async with model(url + "/v1", sleep=sleeps) as llm:  # the system does not trust our CA
            with pytest.raises(LLMError) as caught:
                await llm.complete(HELLO)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        async with model(url + "/v1") as llm:
            answers = [(await llm.complete(HELLO)).content for _ in range(2)]
    message = str(caught.value)
    assert message.startswith(f"LLM request failed: {url}/v1: its TLS certificate is not trusted")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert message.endswith(
        ": if it is signed by a private CA, name that CA's certificate in SSL_CERT_FILE"
        " (or a directory of them in SSL_CERT_DIR)"
    )
    assert sleeps.delays == []  # trying again would not make it trusted
    assert answers == ["ok", "ok"]


async def test_cookies_the_provider_sets_are_sent_back() -> None:
    provider = Provider(answer=completion("ok", b"Set-Cookie: affinity=replica-2; Path=/"))
    async with serving(provider) as url, model(url + "/v1") as llm:
        for _ in range(3):
            assert (await llm.complete(HELLO)).content == "ok"
    assert [header(h, b"cookie") for h in provider.heads] == [
        None,
        b"affinity=replica-2",
        b"affinity=replica-2",
    ]


async def test_a_user_and_password_in_the_base_url_are_sent_as_basic_auth() -> None:
    provider = Provider(answer=ANSWER)
    async with serving(provider) as url:
        base = url.replace("http://", "http://user:secret@") + "/v1"
        async with model(base) as llm:
            assert (await llm.complete(HELLO)).content == "ok"
    assert header(provider.heads[0], b"authorization") == b"Basic dXNlcjpzZWNyZXQ="


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                   "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")  # fmt: skip


async def test_a_model_behind_a_proxy_from_the_environment_is_reached_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    proxy = Provider(answer=completion("via the proxy"))
    async with serving(proxy) as url:
        monkeypatch.setenv("HTTP_PROXY", url)
        async with model("http://localhost:1/v1") as llm:
            answers = [(await llm.complete(HELLO)).content for _ in range(2)]
    assert answers == ["via the proxy", "via the proxy"]
    assert [h.split(b"\r\n")[0] for h in proxy.heads] == [
        b"POST http://localhost:1/v1/chat/completions HTTP/1.1"
    ] * 2


async def test_no_proxy_sends_the_model_s_requests_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    provider = Provider(answer=ANSWER)
    async with serving(Provider()) as dead:
        pass  # nobody listens there: a request through the proxy would fail
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.setenv("NO_PROXY", "localhost")
    async with serving(provider) as url, model(url + "/v1", max_retries=0) as llm:
        assert (await llm.complete(HELLO)).content == "ok"
    assert len(provider.bodies) == 1
