"""What the tools run on: the running threads, the access rules and the server's settings.

One :class:`Deps` per server, made by the lifespan and handed to each tool function by
fastmcp's dependency injection (``deps: Deps = Depends(deps_of)``), so the tools are
plain module-level functions (``tools``) rather than closures over a config.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastmcp import Context
from fastmcp.dependencies import CurrentContext

from agents_mcp.config import Config
from agents_mcp.engine.agent import CHAIN_META, Link, Progress
from agents_mcp.errors import InvalidRequest
from agents_mcp.server.access import Access
from agents_mcp.server.progress import relayed
from agents_mcp.server.ui.apps import renders_apps
from agents_mcp.store.tasks import TaskStore
from agents_mcp.threads.service import Threads

if TYPE_CHECKING:  # consent asks through Deps
    from agents_mcp.server.consent import SignIns

DEPS = "agents-mcp/deps"
"""The lifespan context's key for the server's :class:`Deps`."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The ``[server]`` settings the tools read, resolved once."""

    budget: int
    """About how many characters of reply a result carries (``reply_budget``)."""
    default_wait: float
    """Seconds a call waits for the answer when the caller does not say."""
    inline: bool
    """``approval_prompt = "auto"``: ask in the client when it can (elicitation)."""
    ask_timeout: float
    """How long an inline question waits for the person."""
    progress_interval: float
    person: bool
    """``approver = "person"``: in clients that show the view, the person decides."""
    task_ttl_ms: int = 86_400_000
    """MCP tasks: how long a task answers after it was made (``ttlMs``)."""
    task_poll_ms: int = 1000
    """MCP tasks: how often clients should poll (``pollIntervalMs``)."""

    @classmethod
    def of(cls, config: Config, wait_seconds: float | None = None) -> Settings:
        s = config.server
        return cls(
            budget=s.reply_budget,
            default_wait=s.wait_seconds if wait_seconds is None else wait_seconds,
            inline=s.approval_prompt == "auto",
            ask_timeout=s.elicitation_timeout,
            progress_interval=s.progress_interval,
            person=s.approver == "person",
            task_ttl_ms=s.task_ttl_seconds * 1000,
            task_poll_ms=max(10, round(s.task_poll_interval * 1000)),
        )


@dataclass(frozen=True)
class Deps:
    """Everything a tool call needs besides its arguments and its request."""

    threads: Threads
    access: Access
    settings: Settings
    tasks: TaskStore
    """MCP tasks and the shared secrets, in the thread database."""
    signins: SignIns
    """Downstream sign-ins: whom to tell when one lands."""

    def wait(self, seconds: float | None) -> float:
        """The caller's ``wait_seconds``, or the server's default."""
        return self.settings.default_wait if seconds is None else seconds

    def progress(self, ctx: Context) -> AbstractAsyncContextManager[Progress]:
        """Relay run events as ``notifications/progress`` (when the caller asked for them)."""

        async def send(progress: float, message: str) -> None:
            await ctx.report_progress(progress, None, message)

        return relayed(send, self.settings.progress_interval)

    def person_decides(self, ctx: Context) -> bool:
        """approver = "person" and the client shows the view: approvals are not the model's."""
        return self.settings.person and renders_apps(ctx)


def deps_of(ctx: Context = CurrentContext()) -> Deps:
    """The server's :class:`Deps`, from the lifespan (a dependency of every tool)."""
    deps: Deps = ctx.lifespan_context[DEPS]
    return deps


def incoming_chain(ctx: Context) -> tuple[Link, ...]:
    """The delegation chain a calling agents-mcp sent in the request ``_meta``."""
    rc = ctx.request_context
    meta = rc.meta if rc is not None else None
    raw = meta.get(CHAIN_META) if meta is not None else None
    if raw is None:
        return ()
    try:
        return tuple(Link(str(hop["instance"]), str(hop["agent"])) for hop in raw)
    except (TypeError, KeyError) as exc:
        raise InvalidRequest(
            f"_meta[{CHAIN_META!r}] must be a list of {{instance, agent}} objects"
        ) from exc
