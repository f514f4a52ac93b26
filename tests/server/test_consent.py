"""Whom a landed sign-in is told to: the sessions that accepted to open its page, kept by
each server (not the process), a bounded number of them."""

from __future__ import annotations

import pytest

from agents_mcp.downstream.exchange import SignedIn
from agents_mcp.server.consent import OPEN_PER_SIGN_IN, SignIns

pytestmark = pytest.mark.anyio


class Session:
    def __init__(self, gone: bool = False) -> None:
        self.told: list[str] = []
        self.gone = gone

    async def send_elicit_complete(self, elicitation_id: str) -> None:
        if self.gone:
            raise ConnectionError("the client went away")
        self.told.append(elicitation_id)


def landed(owner: str, server: str) -> SignedIn:
    return SignedIn(owner=owner, server=server, issuer="https://as", scope=None)


async def test_the_sessions_that_were_asked_are_told_once() -> None:
    signins, other = SignIns(), SignIns()
    alice, gone, bob = Session(), Session(gone=True), Session()
    signins.asked("alice", "prot", gone, "e0")
    signins.asked("alice", "prot", alice, "e1")
    signins.asked("bob", "prot", bob, "e2")
    await other.completed(landed("alice", "prot"))  # another server in the process
    assert alice.told == []
    await signins.completed(landed("alice", "prot"))
    await signins.completed(landed("alice", "prot"))
    assert (alice.told, bob.told) == (["e1"], [])


async def test_only_the_latest_accepted_are_remembered() -> None:
    signins = SignIns()
    session = Session()
    for i in range(OPEN_PER_SIGN_IN + 5):
        signins.asked("alice", "prot", session, f"e{i}")
    await signins.completed(landed("alice", "prot"))
    assert session.told == [f"e{i}" for i in range(5, OPEN_PER_SIGN_IN + 5)]
