"""The LLM client's own connections (``agents_mcp.llm.connection``), against real sockets.

A small HTTP/1.1 server on loopback (plain or TLS) stands in for a provider, so that what
reaches the socket, when a connection is reused, and how each failure surfaces are the
real thing. The provider fakes of ``agents_mcp.testing`` exercise the same transport
through every adapter test; these pin what is specific to it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents_mcp.llm import connection
from agents_mcp.llm.chat import OpenAIChatModel
from agents_mcp.llm.connection import ProviderTransport, transport_for
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


def client(**kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=ProviderTransport(), timeout=5.0, **kwargs)


async def test_a_request_reaches_the_socket_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    original = connection._Stream.__init__

    def recording(self: Any, transport: asyncio.Transport, receiver: Any) -> None:
        original(self, transport, receiver)
        send = transport.write

        def write(data: bytes | bytearray | memoryview) -> None:
            writes.append(bytes(data))
            send(data)

        transport.write = write  # this connection only

    monkeypatch.setattr(connection._Stream, "__init__", recording)
    provider = Provider()
    async with serving(provider) as url, client() as http:
        for n in range(3):
            response = await http.post(url + "/v1/chat", content=b'{"n": %d}' % n)
            assert response.content == b'{"n": %d}' % n
    assert provider.bodies == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert len(writes) == 3  # head and body together, once per request
    assert all(w.startswith(b"POST /v1/chat HTTP/1.1\r\n") and w.endswith(b"}") for w in writes)
    assert provider.connections == 1  # kept alive


async def test_a_connection_the_provider_closed_while_idle_is_not_reused() -> None:
    drop = asyncio.Event()

    async def then_drop(body: bytes, writer: asyncio.StreamWriter) -> bool:
        await ok(body, writer)
        await writer.drain()
        await drop.wait()
        return False  # close the connection the client keeps for its next request

    provider = Provider(answer=then_drop)
    async with serving(provider) as url, client() as http:
        assert (await http.post(url, content=b"1")).content == b"1"
        drop.set()
        await asyncio.wait_for(provider.closed.wait(), 5)
        assert (await http.post(url, content=b"2")).content == b"2"
    assert provider.connections == 2


async def test_large_bodies_both_ways_arrive_whole() -> None:
    big = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # past both buffer limits
    assert len(big) > 4 * max(connection.READ_LIMIT, connection.WRITE_LIMIT)
    provider = Provider()
    async with serving(provider) as url, client() as http:
        response = await http.post(url, content=big)
        assert response.content == big
        async with http.stream("POST", url, content=big) as streamed:
            chunks = [chunk async for chunk in streamed.aiter_raw()]
        assert b"".join(chunks) == big
    assert provider.bodies == [big, big]


async def test_silence_past_the_read_timeout_is_a_read_timeout() -> None:
    async def silent(body: bytes, writer: asyncio.StreamWriter) -> bool:
        await provider.hang()
        return False

    provider = Provider(answer=silent)
    async with serving(provider) as url, client() as http:
        with pytest.raises(httpx2.ReadTimeout, match=r"nothing arrived for 0\.1 s"):
            await http.post(url, content=b"x", timeout=httpx2.Timeout(5.0, read=0.1))


@asynccontextmanager
async def not_reading() -> AsyncIterator[tuple[str, asyncio.Event, list[int]]]:
    """A server that reads nothing until the event is set, then counts the bytes that
    still arrive on each connection until its end."""
    release = asyncio.Event()
    counted: list[int] = []
    handlers: set[asyncio.Task[None]] = set()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        await release.wait()
        n = 0
        try:
            while data := await reader.read(1 << 20):
                n += len(data)
        except ConnectionError:
            pass
        counted.append(n)
        writer.close()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # accepted ones too
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = await asyncio.start_server(stall, sock=listener)
    port = listener.getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", release, counted
    finally:
        release.set()
        server.close()
        if handlers:
            await asyncio.wait_for(asyncio.gather(*handlers), 10)


async def test_a_provider_that_stops_reading_is_a_write_timeout_and_the_rest_is_not_sent() -> None:
    big = b"x" * (16 * 1024 * 1024)  # 4x what a sender's buffer grows to by default
    async with not_reading() as (address, release, counted), client() as http:
        with pytest.raises(httpx2.WriteTimeout, match=r"took nothing for 0\.2 s"):
            await http.post(
                f"http://{address}", content=big, timeout=httpx2.Timeout(5.0, write=0.2)
            )
        release.set()
    assert len(counted) == 1
    assert counted[0] < len(big)  # the connection was aborted, not left sending the body


async def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    async with not_reading() as (address, _, _), client() as http:
        with pytest.raises(httpx2.ConnectTimeout, match=r"TLS handshake took over 0\.2 s"):
            await http.post(
                f"https://{address}", content=b"x", timeout=httpx2.Timeout(5.0, connect=0.2)
            )


async def test_an_answer_cut_short_is_a_protocol_error_and_the_next_one_works() -> None:
    answers = iter(["cut", "ok"])

    async def flaky(body: bytes, writer: asyncio.StreamWriter) -> bool:
        if next(answers) == "cut":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
            return False
        return await ok(body, writer)

    async with serving(Provider(answer=flaky)) as url, client() as http:
        with pytest.raises(
            httpx2.RemoteProtocolError, match="without sending complete message body"
        ):
            await http.post(url, content=b"x")
        assert (await http.post(url, content=b"y")).content == b"y"


async def test_a_cancelled_request_leaves_the_client_usable() -> None:
    started = asyncio.Event()
    answers = iter(["hang", "ok"])

    async def hang_once(body: bytes, writer: asyncio.StreamWriter) -> bool:
        if next(answers) == "hang":
            started.set()
            await provider.hang()
        return await ok(body, writer)

    provider = Provider(answer=hang_once)
    async with serving(provider) as url, client() as http:
        task = asyncio.create_task(http.post(url, content=b"first"))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert (await http.post(url, content=b"second")).content == b"second"
    assert provider.connections == 2  # the interrupted connection was not reused


async def test_nobody_listening_is_a_connect_error() -> None:
    async with serving(Provider()) as url:
        pass  # closed: the port is free again
    async with client() as http:
        with pytest.raises(httpx2.ConnectError):
            await http.post(url, content=b"x")


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
    provider = Provider()
    async with serving(provider, tls=server) as url:
        async with client() as http:  # the system's trust does not know our CA
            with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.post(url, content=b"x")
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        async with client() as http:
            for n in range(2):
                assert (await http.post(url, content=b"tls %d" % n)).content == b"tls %d" % n
            big = b"z" * (3 * connection.READ_LIMIT)
            assert (await http.post(url, content=big)).content == big
    assert provider.bodies[-3:] == [b"tls 0", b"tls 1", big]


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                   "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")  # fmt: skip


def test_a_proxy_in_the_environment_leaves_the_requests_to_httpx2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    openai, local = httpx2.URL("https://api.openai.com/v1"), httpx2.URL("http://ollama:11434/v1")
    assert isinstance(transport_for(openai), ProviderTransport)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")  # for http:// only
    assert isinstance(transport_for(openai), ProviderTransport)
    assert transport_for(local) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert transport_for(openai) is None


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


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def test_cookies_the_provider_sets_are_sent_back() -> None:
    provider = Provider(answer=completion("ok", b"Set-Cookie: affinity=replica-2; Path=/"))
    async with serving(provider) as url, OpenAIChatModel(base_url=url + "/v1", model="m") as model:
        for _ in range(3):
            assert (await model.complete(HELLO)).content == "ok"
    assert [header(h, b"cookie") for h in provider.heads] == [
        None,
        b"affinity=replica-2",
        b"affinity=replica-2",
    ]


async def test_a_user_and_password_in_the_base_url_are_sent_as_basic_auth() -> None:
    provider = Provider(answer=completion("ok"))
    async with serving(provider) as url:
        base = url.replace("http://", "http://user:secret@") + "/v1"
        async with OpenAIChatModel(base_url=base, model="m") as model:
            assert (await model.complete(HELLO)).content == "ok"
    assert header(provider.heads[0], b"authorization") == b"Basic dXNlcjpzZWNyZXQ="


async def test_an_idle_connection_the_loop_has_not_seen_end_is_not_reused() -> None:
    """``is_readable`` asks the socket when the event loop has not yet read the end."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, receiver = await loop.create_connection(connection._Receiver, "127.0.0.1", port)
        stream = connection._Stream(transport, receiver)
        accepted, _ = listener.accept()  # already queued: does not block
        assert stream.get_extra_info("is_readable") is False
        accepted.close()  # the FIN is on our socket now; the loop has not run since
        assert not receiver.ended
        assert stream.get_extra_info("is_readable") is True
        await stream.aclose()
    finally:
        listener.close()


async def test_a_model_behind_a_proxy_from_the_environment_is_reached_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    proxy = Provider(answer=completion("via the proxy"))
    async with serving(proxy) as url:
        monkeypatch.setenv("HTTP_PROXY", url)
        async with OpenAIChatModel(base_url="http://localhost:1/v1", model="m") as model:
            answers = [await model.complete(HELLO) for _ in range(2)]
    assert [a.content for a in answers] == ["via the proxy", "via the proxy"]
    assert [h.split(b"\r\n")[0] for h in proxy.heads] == [
        b"POST http://localhost:1/v1/chat/completions HTTP/1.1"
    ] * 2
