"""The store's writes for runs that wait for their owner to sign in to a server.

A call refused for want of a sign-in waits (its row ``waiting``) on a pending item of
kind ``authorization`` (written by ``hold_call``); once the sign-in is given the run
starts the call again: its row goes back to ``started`` before it is invoked, so a crash
then says "it may have run", as for any call (see ``states``).
"""

from __future__ import annotations

from agents_mcp.store.database import Database, Tx
from agents_mcp.store.records import Claim
from agents_mcp.store.writes import touch


class SignInWrites:
    """Mixed into ``SQLStore``."""

    db: Database

    async def restart_call(self, thread_id: str, claim: Claim, index: int, call_id: str) -> None:
        """The call whose row ``index`` waited for a sign-in is started again."""

        async def body(tx: Tx) -> None:
            await touch(tx, thread_id, claim)
            await tx.execute(
                "UPDATE messages SET status='started' WHERE thread_id=? AND idx=?"
                " AND tool_call_id=? AND status='waiting'",
                (thread_id, index, call_id),
            )

        await self.db.transaction("restart_call", body)
