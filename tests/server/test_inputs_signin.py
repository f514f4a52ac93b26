"""A sign-in the run waits for, where input-required results and tasks list what a thread
waits on: a URL-mode elicitation for clients that declare URL mode, nothing for others,
and only a refusal decides it (the callback resumes the run)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastmcp import Context
from mcp_types import ClientCapabilities, ElicitationCapability, InputRequiredResult

from agents_mcp.engine.summary import TurnSummary
from agents_mcp.messages import Usage
from agents_mcp.server import mrtr
from agents_mcp.server.inputs import (
    Era,
    approval_message,
    approval_request,
    declares_elicitation,
    pending_inputs,
)
from agents_mcp.server.threadtasks import waiting_message
from agents_mcp.store import Approval, Thread
from agents_mcp.store.records import ApprovalKind, digest, now

URL = "https://auth.example/authorize?state=s"


def pending(call_id: str, kind: ApprovalKind = "call") -> Approval:
    return Approval(
        thread_id="th_1",
        call_id=call_id,
        server="tracker",
        tool="file_issue",
        arguments="{}",
        digest=digest("{}"),
        status="pending",
        reason=None,
        requested_at=now(),
        decided_at=None,
        kind=kind,
        url=URL if kind == "authorization" else None,
    )


def summary(*items: Approval) -> TurnSummary:
    stamp = now()
    thread = Thread(
        id="th_1", agent="triage", owner="alice", title="t", status="needs_approval",
        error_type=None, error_message=None, created_at=stamp, updated_at=stamp,
        message_count=2,
    )  # fmt: skip
    return TurnSummary(
        thread=thread, reply=None, usage=Usage(), llm_requests=1, tool_calls=0, pending=list(items)
    )


def test_a_sign_in_is_a_url_mode_request_only_for_clients_that_declare_url_mode() -> None:
    s = summary(pending("signin_1", "authorization"), pending("c1"))
    with_url = pending_inputs(s, url_mode=True)
    assert list(with_url) == ["signin:th_1:signin_1", "approve:th_1:c1"]
    params: dict[str, Any] = with_url["signin:th_1:signin_1"].request["params"]
    assert params == {
        "mode": "url",
        "message": "Agent 'triage' needs you to sign in to tracker to go on.",
        "url": URL,
    }
    assert list(pending_inputs(s, url_mode=False)) == ["approve:th_1:c1"]


def test_an_input_required_result_carries_the_sign_in_and_does_not_ask_it_twice() -> None:
    s = summary(pending("signin_1", "authorization"))
    asked = mrtr.ask(s, "alice", url_mode=True)
    assert isinstance(asked, InputRequiredResult)
    assert asked.input_requests is not None
    (request,) = asked.input_requests.values()
    assert request.params.mode == "url"  # type: ignore[union-attr]
    assert mrtr.ask(s, "alice", url_mode=False) is None  # the structured result says it
    assert mrtr.ask(s, "alice", frozenset({"signin:th_1:signin_1"}), url_mode=True) is None


def test_a_task_says_where_to_sign_in() -> None:
    s = summary(pending("signin_1", "authorization"), pending("c1"))
    assert waiting_message(s) == (
        f"waiting for a decision on 1 tool call(s); the user to sign in to tracker at {URL}"
    )
    assert waiting_message(replace(s, pending=[pending("c1")])) == (
        "waiting for a decision on 1 tool call(s)"
    )


def request(elicitation: dict[str, Any] | None, version: str = "2025-11-25") -> Context:
    """What ``declares_elicitation`` reads of a request: its protocol version and the
    capabilities its client declared (``elicitation`` as on the wire; None: not declared)."""
    modes = None if elicitation is None else ElicitationCapability.model_validate(elicitation)
    declared = ClientCapabilities(elicitation=modes)
    return cast(
        Context,
        SimpleNamespace(
            request_context=SimpleNamespace(protocol_version=version),
            session=SimpleNamespace(client_capabilities=declared),
        ),
    )


@pytest.mark.parametrize(
    ("declared", "form", "url"),
    [
        (None, False, False),
        ({}, True, False),  # an empty object is form mode only
        ({"form": {}}, True, False),
        ({"url": {}}, False, True),
        ({"form": {}, "url": {}}, True, True),
    ],
)
def test_a_client_is_asked_in_the_modes_it_declares(
    declared: dict[str, Any] | None, form: bool, url: bool
) -> None:
    ctx = request(declared)
    assert (declares_elicitation(ctx), declares_elicitation(ctx, url=True)) == (form, url)


@pytest.mark.parametrize(
    ("version", "era", "asked"),
    [
        ("2025-11-25", "handshake", True),
        ("2025-11-25", "2026-07-28", False),
        ("2026-07-28", "2026-07-28", True),
        ("2026-07-28", "handshake", False),
    ],
)
def test_a_client_is_asked_only_in_the_era_that_asks_that_way(
    version: str, era: Era, asked: bool
) -> None:
    assert declares_elicitation(request({}, version), era=era) is asked


def test_a_call_is_asked_about_in_the_same_words_in_every_era() -> None:
    """The handshake era's inline question, the input-required result's and the task's say
    who asks (the chain of delegations), the tool, its server and the arguments."""
    a = replace(pending("c1"), via=("triage", "coder"), arguments='{"title": "t"}')
    message = approval_message("triage", a)
    assert message == (
        "Agent 'triage › coder' wants to call file_issue on server 'tracker' with"
        ' {"title": "t"}. Allow it?'
    )
    assert approval_request("triage", a)["params"]["message"] == message
