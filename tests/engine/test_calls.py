"""What a call runs with: the arguments stored when it was approved, checked against their
digest on every path that runs it: right after the approval, and after a sign-in the
approved call had to wait for."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agents_mcp.engine import signins
from agents_mcp.engine.calls import MISMATCH, Decisions, Plan, plan_calls
from agents_mcp.messages import ToolCall
from agents_mcp.store import Approval, digest, now
from agents_mcp.toolsets import SignIn, ToolInfo

INFO = ToolInfo(name="prot__send", server="prot", tool="send", description="", parameters={})
ASKED = json.dumps({"text": "hello"})
CALL = ToolCall(id="c1", name="prot__send", arguments=ASKED)


def approved(arguments: str) -> Approval:
    """The call's approval, its digest taken of what was asked; ``arguments`` as stored
    now (someone with access to the database may have changed them since)."""
    return Approval(
        thread_id="t",
        call_id=CALL.id,
        server="prot",
        tool="send",
        arguments=arguments,
        digest=digest(ASKED),
        status="approved",
        reason=None,
        requested_at=now(),
        decided_at=now(),
    )


def signed_in() -> Approval:
    """The sign-in the approved call then waited for, given."""
    item = signins.for_call("t", CALL, INFO, SignIn(server="prot", url="https://as/authorize"))
    return dataclasses.replace(item, status="approved", decided_at=now())


def plan(*every: Approval) -> Plan:
    decisions = Decisions(every=every, grants=set(), held=set())
    return plan_calls(
        [CALL], {INFO.name: INFO}, decisions, thread_id="t", said=None,
        requires_approval=lambda info: True,
    )  # fmt: skip


TAMPERED = json.dumps({"text": "wire the money"})


@pytest.mark.parametrize("after_sign_in", [False, True], ids=["approved", "after-sign-in"])
def test_the_stored_arguments_run_and_tampered_ones_do_not(after_sign_in: bool) -> None:
    waited = (signed_in(),) if after_sign_in else ()
    ok = plan(approved(ASKED), *waited)
    bad = plan(approved(TAMPERED), *waited)
    runs = ok.resumed if after_sign_in else ok.runnable
    assert [(c.id, args) for c, _, args in runs] == [("c1", ASKED)]
    assert (bad.runnable, bad.resumed) == ([], [])
    assert [(m.tool_call_id, m.content) for m in bad.answers] == [("c1", MISMATCH)]
