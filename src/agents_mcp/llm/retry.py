"""When and how long to retry a failed model request: one policy for every provider.

Retried: connection failures (not a certificate that fails verification), timeouts,
streams that end before the provider said they were complete, HTTP 408, 409, 429 and 5xx
(Anthropic's 529 ``overloaded_error`` among them), and errors the provider reports inside
a stream that mean the same (overloaded, rate limited, server error). The delay is at
most ``backoff``, doubled per retry up to 20 s, unless the provider names one with
``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), which wins, capped at
60 s. A connection refused by another machine is retried once at most; refused on this
machine, it is not retried (nothing listens there; see :mod:`.failures`). Anything else
(a rejected request, a bad key, a malformed answer, a URL that is not the API's: 404, 405
or a web page) fails at once: repeating it would fail the same way.

Our own delay is jittered ("full jitter"): a random time between 0 and the doubled
backoff, so replicas that got the same 429 at the same moment do not come back together
and get it again. A delay the provider names is kept exactly: it knows when it will
have room.
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import anyio

from agents_mcp.errors import LLMError

log = logging.getLogger("agents_mcp.llm")

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]
"""A source of uniform numbers in ``[0, 1)``, as :func:`random.random`."""
T = TypeVar("T")

MAX_BACKOFF = 20.0
MAX_RETRY_AFTER = 60.0
RETRY_STATUSES = frozenset({408, 409, 429})


class Retryable(Exception):
    """An attempt failed in a way worth repeating; ``error`` is raised once retries run out.

    ``limit``: at most this many retries for this failure, fewer than the policy's own
    when more would only delay the error (a connection refused: see ``llm.failures``).
    """

    def __init__(
        self, error: LLMError, retry_after: float | None = None, *, limit: int | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.limit = limit


def retryable_status(status: int) -> bool:
    """Whether an HTTP status (or a status a provider reports in a body) is worth repeating."""
    return status in RETRY_STATUSES or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The delay the provider asked for, in seconds (None: it asked for none we can read)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return min(max(float(millis) / 1000, 0.0), MAX_RETRY_AFTER)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass
class RetryPolicy:
    """Repeats an attempt that raised :class:`Retryable`, at most ``max_retries`` times."""

    max_retries: int = 3
    backoff: float = 0.5
    sleep: Sleep = field(default=anyio.sleep)
    rand: Random = field(default=random.random)

    def delay(self, n: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``n + 1``: what the provider asked for, exactly,
        else a uniform draw between 0 and ``backoff * 2**n`` (at most :data:`MAX_BACKOFF`)."""
        if retry_after is not None:
            return retry_after
        return min(self.backoff * 2.0**n, MAX_BACKOFF) * self.rand()

    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        """``attempt(n)`` (n counts from 0) until it succeeds or retries run out.

        Out of retries, the last attempt's :class:`LLMError` is raised, saying how many
        attempts were made when there was more than one.
        """
        n = 0
        while True:
            try:
                return await attempt(n)
            except Retryable as exc:
                if n >= min(self.max_retries, self.max_retries if exc.limit is None else exc.limit):
                    if not n:
                        raise exc.error from exc.__cause__
                    msg = f"{exc.error} (gave up after {n + 1} attempts)"
                    raise LLMError(msg, status=exc.error.status) from exc.__cause__
                delay = self.delay(n, exc.retry_after)
                log.debug("retrying in %.2fs: %s", delay, exc.error)
                await self.sleep(delay)
                n += 1
