"""How a run waiting for its user to sign in to a downstream server is shown to callers.

The pending item (an ``Approval`` of kind ``authorization``, see ``engine.signins``)
appears in results as ``pending_authorizations``: the server, the URL to sign in at,
and the call id that ``approve_call(approve=false)`` declines it with.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from agents_mcp.store import Approval


class PendingAuthorization(BaseModel):
    """A sign-in the agent waits for: a downstream server wants the user's own consent."""

    call_id: str = Field(description="approve_call(approve=false) with it gives up on it")
    thread_id: str = Field(description="The thread waiting (a delegation's own)")
    server: str = Field(description="The downstream server to sign in to")
    url: str = Field(
        description="Where the user signs in (that server's authorization server); the run"
        " goes on by itself once they did"
    )
    tool: str | None = Field(description="The tool call waiting for it; null: the tool list")
    requested_at: str
    via: list[str] = Field(
        default_factory=list[str],
        description="The agents it comes through, from this thread's agent down",
    )


class SignInPreview(BaseModel):
    call_id: str
    server: str
    url: str
    age_seconds: int


def pending_authorization(a: Approval) -> PendingAuthorization:
    return PendingAuthorization(
        call_id=a.call_id,
        thread_id=a.thread_id,
        server=a.server,
        url=a.url or "",
        tool=a.tool or None,
        requested_at=a.requested_at,
        via=list(a.via),
    )


def sign_in_text(thread_id: str, pending: Sequence[PendingAuthorization]) -> list[str]:
    lines = ["The agent needs the user to sign in before it can go on:"]
    for p in pending:
        what = f" (for {p.server}__{p.tool})" if p.tool else ""
        where = f"call_id: {p.call_id}"
        if p.thread_id != thread_id:
            where += f", thread_id: {p.thread_id}"
        lines.append(f"- Sign in to {p.server}{what}: {p.url} ({where})")
    lines.append(
        "Give the user each link to open in their browser. Once they signed in, the run"
        f" goes on by itself: then call get_thread(thread_id={thread_id!r},"
        " wait_seconds=30). approve_call(approve=false) with a call_id gives up on that"
        " sign-in."
    )
    return lines
