"""What a failed model request tells the user: what happened, in one line, and what to
check; and whether trying again may help (see :mod:`agents_mcp.llm.retry` for how).

Two failures are about the configuration rather than the provider, and repeating the
request would only fail the same way, later:

- a URL that answers with a web page (an HTML error page for a path that does not exist,
  a web UI) or with 404/405: ``base_url`` is not where the provider's API is
  (:class:`WrongEndpoint`);
- a connection refused on this machine: nothing listens on that port; a local model
  server is not running, or ``base_url`` names the wrong port.
"""

from __future__ import annotations

import errno
import html
import ipaddress
import json
import re
from typing import Any

import httpx2

from agents_mcp.errors import LLMError

RETRIED_PAGES = frozenset({408, 429, 502, 503, 504})
"""Statuses whose web page is still worth another try: the proxies and gateways in front
of a real API answer these with a page of their own."""

NOT_FOUND = frozenset({404, 405})
"""Statuses that say the URL is wrong (no such path, or it takes no POST)."""

QUICK_RETRIES = 1
"""How often a connection refused by another machine is tried again: once, in case a
server was restarting; more would only delay the error."""

BODY_CHARS = 200
"""The most of an answer's body an error message quotes."""


class WrongEndpoint(LLMError):
    """The URL answered, but not as the provider's API does: a web page, no such path.

    ``problem`` is what happened and ``hint`` what to check; the message is both.
    """

    def __init__(self, problem: str, hint: str, *, status: int | None) -> None:
        super().__init__(f"{problem}; {hint}", status=status)
        self.problem = problem
        self.hint = hint


def endpoint_hint(path: str, *, model_too: bool = False) -> str:
    """What to check when the URL is not the API's: requests go to ``base_url + path``."""
    what = "base_url and model" if model_too else "base_url"
    return f"check the model's {what} (requests go to base_url + {path}; it usually ends in /v1)"


def one_line(text: str, limit: int = BODY_CHARS) -> str:
    """``text`` on one line (runs of whitespace as one space), cut to ``limit``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_page(response: httpx2.Response, body: bytes | None = None) -> bool:
    """Whether the answer is a web page: an HTML content type, or a body that starts as
    HTML does (servers that send pages as ``text/plain`` or without a type)."""
    ctype = response.headers.get("content-type", "").lower()
    if "html" in ctype:
        return True
    start = (body or b"")[:100].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HIDDEN = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def page_title(text: str) -> str:
    """A web page in a few words: its ``<title>``, else the start of its visible text."""
    found = _TITLE.search(text)
    if found and found[1].strip():
        return one_line(html.unescape(found[1]), 120)
    visible = html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", text)))
    return one_line(visible, 120) or "no text"


def error_text(error: Any) -> str | None:
    """The message of an error object (``{"message": …}``) or an error string."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None


def provider_message(response: httpx2.Response) -> str:
    """What the provider said in an error response, in one short line."""
    text = response.text
    if is_page(response, response.content):
        return f"{page_title(text)} (a web page)"
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            found = error_text(payload.get(key))
            if found:
                return one_line(found, 300)
    return one_line(text, BODY_CHARS) or response.reason_phrase or "no details"


def refused(exc: BaseException) -> bool:
    """Whether a failed connection was refused (nothing listens on the port), from the
    operating system's error among its causes rather than from message text."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return True
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(c for c in (current.__cause__, current.__context__) if c is not None)
    return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost`` or a loopback address."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refused_text(url: httpx2.URL) -> str:
    """What a refused connection means, for the host and port of ``url``."""
    port = url.port or (443 if url.scheme == "https" else 80)
    where = f"{url.host}:{port}"
    if is_loopback(url.host):
        return (
            f"nothing is listening at {where} (connection refused): start the model's server,"
            " or correct the port in the model's base_url"
        )
    return (
        f"{where} refused the connection: check the host and port in the model's base_url,"
        " and that the provider is up"
    )


FAILURES: tuple[tuple[type[httpx2.HTTPError], bool, str], ...] = (
    (httpx2.ConnectTimeout, True, "no connection within {connect:g} s: check that base_url "
     "is reachable from here (through HTTPS_PROXY or HTTP_PROXY if this network needs one)"),
    (httpx2.ReadTimeout, True, "no answer for {read:g} s: the provider may be overloaded; "
     "if the model needs longer, raise its `timeout` in the config"),
    (httpx2.WriteTimeout, True, "the provider took none of the request for {write:g} s: "
     "it is overloaded or the network is; try again later"),
    (httpx2.PoolTimeout, True, "no free connection for {pool:g} s: more than "
     "{max_connections} requests at once to this model; run fewer agents at once"),
    (httpx2.ProxyError, False, "the proxy failed: {detail}: check HTTPS_PROXY, HTTP_PROXY "
     "and ALL_PROXY, or exempt the host with NO_PROXY"),
    (httpx2.ConnectError, True, "could not connect: {detail}: check base_url and that the "
     "provider is up"),
    (httpx2.RemoteProtocolError, True, "the provider broke off the answer: {detail}"),
    (httpx2.NetworkError, True, "the connection broke: {detail}"),
    (httpx2.UnsupportedProtocol, False, "base_url must start with http:// or https://"),
    (httpx2.LocalProtocolError, False, "the request could not be sent: {detail}: check the "
     "model's api_key and base_url for characters that cannot go in HTTP"),
    (httpx2.DecodingError, False, "the provider's answer could not be decoded: {detail}"),
    (httpx2.HTTPError, False, "{detail}"),
)  # fmt: skip
"""httpx2's exceptions, most specific first: whether to retry, and what to tell the user
(``{detail}`` is httpx2's message; ``{connect}``, ``{read}``... the client's timeouts)."""

UNTRUSTED = (
    "its TLS certificate is not trusted: {detail}: if it is signed by a private CA, name"
    " that CA's certificate in SSL_CERT_FILE (or a directory of them in SSL_CERT_DIR)"
)
"""A :class:`httpx2.ConnectError` that is a failed certificate verification: not retried."""
