"""The store, on SQLite and on PostgreSQL: migrations, ids, claims and every transition."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from agents_mcp.errors import ConfigError, Conflict, LostClaim, NotFound, StopRequested
from agents_mcp.messages import Message, ToolCall
from agents_mcp.store import (
    Approval,
    ApprovalStatus,
    Claim,
    SQLStore,
    StateConflict,
    ThreadStatus,
    digest,
    now,
    open_store,
)
from agents_mcp.store.database import Tx
from agents_mcp.store.migrations import MIGRATIONS, migrate_sql
from agents_mcp.store.sqlite import SQLITE
from agents_mcp.store.states import DID_NOT_RUN, MAY_HAVE_RUN, STOPPED_BEFORE, TRANSITIONS

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


def approval(thread_id: str, call_id: str, status: ApprovalStatus = "pending") -> Approval:
    return Approval(
        thread_id=thread_id,
        call_id=call_id,
        server="s",
        tool="t",
        arguments="{}",
        digest=digest("{}"),
        status=status,
        reason=None,
        requested_at=now(),
        decided_at=None,
    )


def answer(*ids: str) -> Message:
    calls = tuple(ToolCall(id=i, name="s__t", arguments="{}") for i in ids)
    return Message(role="assistant", tool_calls=calls)


def started(call_id: str) -> Message:
    return Message(role="tool", tool_call_id=call_id, status="started")


async def test_a_blank_database_is_migrated_and_recorded(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    await store.close()
    db = sqlite3.connect(tmp_path / "t.db")
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1")
    ]
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert versions == [v for v, _, _ in MIGRATIONS]
    assert tables == snapshot(
        [
            "approvals",
            "budget_days",
            "cancels",
            "grants",
            "messages",
            "oauth_clients",
            "oauth_pending",
            "oauth_tokens",
            "questions",
            "runners",
            "schema_migrations",
            "secrets",
            "tasks",
            "thread_traces",
            "threads",
            "turn_budgets",
        ]
    )
    assert mode == "wal"
    store = await open_store(tmp_path / "t.db")  # opening again applies nothing twice
    await store.close()


@pytest.mark.parametrize("agent", [None, "a"])
@pytest.mark.parametrize("status", [None, "running"])
@pytest.mark.parametrize("children", [False, True])
@pytest.mark.parametrize("after", [None, ("2026-01-01T00:00:00.000Z", "th_x")])
async def test_every_list_threads_filter_walks_an_index_in_order(
    tmp_path: Path,
    agent: str | None,
    status: ThreadStatus | None,
    children: bool,
    after: tuple[str, str] | None,
) -> None:
    """No filter makes a page scan the owner's threads or sort them: with 100 000 threads
    and few matches, either would cost milliseconds per page (benchmarks S6)."""
    from agents_mcp.store.reads import list_threads_query

    store = await open_store(tmp_path / "t.db")
    await store.close()
    sql, params = list_threads_query(
        owner="o", agent=agent, status=status, after=after, include_children=children
    )
    db = sqlite3.connect(tmp_path / "t.db")
    plan = [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", [*params, 20])]
    db.close()
    assert len(plan) == 1 and plan[0].startswith("SEARCH threads USING INDEX"), plan
    constrained = plan[0].split("(", 1)[1]
    for column, used in (("owner", True), ("agent", agent), ("status", status)):
        assert (f"{column}=?" in constrained) == bool(used), plan


async def test_a_postgresql_database_is_migrated_once_by_replicas_starting_together(
    pg_cluster: str,
) -> None:
    import anyio
    import asyncpg

    from tests.postgres import fresh_database

    url = await fresh_database(pg_cluster)
    stores: list[SQLStore] = []

    async def start() -> None:
        stores.append(await open_store(url))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(start)
    for s in stores:
        await s.close()
    conn = await asyncpg.connect(url)
    versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    await conn.close()
    assert versions == [v for v, _, _ in MIGRATIONS]


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    await store.close()
    db = sqlite3.connect(tmp_path / "t.db")
    db.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 'x')")
    db.commit()
    with pytest.raises(ConfigError, match="schema version 999, newer than this agents-mcp knows"):
        await open_store(tmp_path / "t.db")


async def test_a_version_8_database_keeps_its_threads(tmp_path: Path) -> None:
    """Rows "pending" before the calls knew when they started: a call in flight becomes
    "started", one waiting on another agents-mcp's approvals "waiting"."""
    path = tmp_path / "t.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
    )
    for version, name, sql in MIGRATIONS[:8]:
        assert not callable(sql)  # the first migrations are plain SQL
        for statement in migrate_sql(SQLITE, sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 'x')", (version, name))
    db.execute(
        "INSERT INTO threads (id, agent, owner, title, status, created_at, updated_at,"
        " message_count) VALUES ('th_a', 'a', 'local', 't', 'running', 'x', 'x', 3)"
    )
    for idx, role, call, status in [
        (0, "user", None, "complete"),
        (1, "tool", "c1", "pending"),
        (2, "tool", "c2", "pending"),
    ]:
        db.execute(
            "INSERT INTO messages (thread_id, idx, role, tool_call_id, status, created_at)"
            " VALUES ('th_a', ?, ?, ?, ?, 'x')",
            (idx, role, call, status),
        )
    db.execute(
        "INSERT INTO approvals (thread_id, call_id, server, tool, arguments, digest, status,"
        " requested_at, origin_call_id) VALUES ('th_a', 'c2:r', 's', 't', '{}', 'd', 'pending',"
        " 'x', 'c2')"
    )
    db.close()
    store = await open_store(path)
    history = await store.messages("th_a")
    pending = await store.pending_in_tree("th_a")
    await store.close()
    assert [h.message.status for h in history] == ["complete", "started", "waiting"]
    assert [a.call_id for a in pending] == ["c2:r"]


async def test_each_turn_keeps_its_own_output_schema(store: SQLStore) -> None:
    """The schema of a turn's answer is stored with the turn's first write, so a run that
    pauses (or a server that restarts) finds it again; a turn without one clears it."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    run = Claim.new(store.runner)
    t = await store.create_thread(
        agent="a", owner="o", first_message="count", claim=run, output_schema=schema
    )
    assert t.output_schema == schema
    await store.append(t.id, run, Message(role="assistant", content='{"n": 1}'), complete=True)
    again = await store.thread(t.id)
    assert again is not None and again.output_schema == schema
    plain = await store.start_turn(t.id, "now in words", claim=Claim.new(store.runner))
    assert plain.output_schema is None
    await store.append(t.id, Claim(plain.claim or "", store.runner), complete=True)
    other = {"type": "array"}
    last = await store.start_turn(
        t.id, "a list", claim=Claim.new(store.runner), output_schema=other
    )
    assert last.output_schema == other


async def test_a_version_9_database_gets_the_output_schema_column(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
    )
    for version, name, sql in MIGRATIONS[:9]:
        assert not callable(sql)  # the first migrations are plain SQL
        for statement in migrate_sql(SQLITE, sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 'x')", (version, name))
    db.execute(
        "INSERT INTO threads (id, agent, owner, title, status, created_at, updated_at,"
        " message_count) VALUES ('th_a', 'a', 'local', 't', 'completed', 'x', 'x', 0)"
    )
    db.close()
    store = await open_store(path)
    old = await store.thread("th_a")
    await store.close()
    assert old is not None and old.output_schema is None


async def test_thread_ids_are_unguessable_and_owner_checked(store: SQLStore) -> None:
    claim = Claim.new(store.runner)
    ids = {
        (await store.create_thread(agent="a", owner="me", first_message="x", claim=claim)).id
        for _ in range(20)
    }
    with pytest.raises(NotFound):
        await store.get_thread(next(iter(ids)), "someone-else")
    assert len(ids) == 20
    assert all(i.startswith("th_") and len(i) >= 3 + 24 for i in ids)  # 144 random bits


async def test_only_the_run_holding_the_thread_writes_to_it(store: SQLStore) -> None:
    mine, other = Claim.new(store.runner), Claim.new(store.runner)
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=mine)
    assert (t.status, t.claim, t.runner) == ("running", mine.token, store.runner)
    with pytest.raises(LostClaim):
        await store.append(t.id, other, Message(role="assistant", content="intruder"))
    with pytest.raises(StateConflict) as refused:
        await store.start_turn(t.id, "again", claim=other)
    assert refused.value.thread.status == "running"
    await store.append(t.id, mine, Message(role="assistant", content="done"), complete=True)
    done = await store.thread(t.id)
    assert done is not None and (done.status, done.claim) == ("completed", None)
    with pytest.raises(LostClaim):  # the run is over: its claim ended with it
        await store.append(t.id, mine, Message(role="assistant", content="late"))
    again = await store.start_turn(t.id, "again", claim=other)
    assert (again.status, again.claim) == ("running", other.token)
    assert [h.message.content for h in await store.messages(t.id)] == ["hi", "done", "again"]


async def test_a_runs_steps_do_not_move_updated_at_its_end_does(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads are listed by when a turn started or ended: a step inside the run leaves
    ``updated_at`` (held by every list index) alone; the answer that ends it moves it."""
    ticks = iter(f"2026-11-27T12:00:{n:02d}.000Z" for n in range(60))
    monkeypatch.setattr("agents_mcp.store.sql.now", lambda: next(ticks))
    run = Claim.new(store.runner)
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=run)
    [i, _] = await store.append(t.id, run, answer("c1"), started("c1"))
    await store.finish_call(t.id, run, i + 1, "c1", "result", ok=True)
    stepped = await store.thread(t.id)
    assert stepped is not None
    assert (stepped.updated_at, stepped.message_count) == (t.updated_at, 3)
    await store.append(t.id, run, Message(role="assistant", content="done"), complete=True)
    done = await store.thread(t.id)
    assert done is not None and (done.status, done.claim, done.runner) == ("completed", None, None)
    assert done.updated_at > t.updated_at


async def test_the_last_decision_claims_the_thread_in_the_same_write(store: SQLStore) -> None:
    run = Claim.new(store.runner)
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=run)
    await store.append(
        t.id, run, answer("c1", "c2"), approvals=[approval(t.id, "c1"), approval(t.id, "c2")]
    )
    assert await store.pause(t.id, run)
    first, last = Claim.new(store.runner), Claim.new(store.runner)
    one = await store.decide(t.id, t.id, "c1", approve=True, reason=None, claim=first)
    two = await store.decide(t.id, t.id, "c2", approve=False, reason="no", claim=last)
    again = await store.decide(t.id, t.id, "c2", approve=False, reason="no", claim=first)
    with pytest.raises(Conflict, match="already denied"):
        await store.decide(t.id, t.id, "c2", approve=True, reason=None, claim=first)
    resumed = await store.thread(t.id)
    assert (one.outcome, two.outcome, again.outcome) == ("recorded", "resumed", "unchanged")
    assert resumed is not None and (resumed.status, resumed.claim) == ("running", last.token)


async def test_a_decision_made_while_the_run_goes_on_lets_it_go_on(store: SQLStore) -> None:
    run = Claim.new(store.runner)
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=run)
    await store.append(t.id, run, answer("c1"), approvals=[approval(t.id, "c1")])
    decided = await store.decide(t.id, t.id, "c1", approve=True, reason=None, claim=Claim.new("x"))
    assert decided.outcome == "recorded"  # the run still holds the thread
    assert not await store.pause(t.id, run)  # nothing is undecided: it goes on
    thread = await store.thread(t.id)
    assert thread is not None and thread.claim == run.token


async def test_interrupted_runs_say_what_ran_and_resume_decided_calls(store: SQLStore) -> None:
    gone = Claim.new("run_gone")
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=gone)
    await store.append(
        t.id, gone, answer("ran", "free", "ok", "ask"), started("ran"),
        approvals=[approval(t.id, "ok"), approval(t.id, "ask")],
    )  # fmt: skip
    await store.decide(t.id, t.id, "ok", approve=True, reason=None, claim=Claim.new("x"))
    # One call still undecided: the tree waits, and nothing resumes yet.
    waiting = await store.settle(t.id, claim=gone.token, cancel=False, resume=Claim.new("me"))
    results = {h.message.tool_call_id: h.message.content for h in await store.messages(t.id)}
    assert waiting is not None and waiting.status == "needs_approval"
    assert (results["ran"], results["free"]) == (MAY_HAVE_RUN, DID_NOT_RUN)
    assert "ok" not in results and "ask" not in results
    # The last decision resumes it; settling the same run again changes nothing.
    assert await store.settle(t.id, claim=gone.token, cancel=False) is None
    me = Claim.new(store.runner)
    decided = await store.decide(t.id, t.id, "ask", approve=True, reason=None, claim=me)
    assert decided.outcome == "resumed"


async def test_settling_resumes_a_tree_whose_calls_are_all_decided(store: SQLStore) -> None:
    gone = Claim.new("run_gone")
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=gone)
    await store.append(t.id, gone, answer("ok"), approvals=[approval(t.id, "ok")])
    await store.decide(t.id, t.id, "ok", approve=True, reason=None, claim=Claim.new("x"))
    me = Claim.new(store.runner)
    settled = await store.settle(t.id, claim=gone.token, cancel=False, resume=me)
    resumed = await store.thread(t.id)
    assert settled is not None and settled.status == "running"
    assert resumed is not None and resumed.claim == me.token
    events = [h.message.content for h in await store.messages(t.id) if h.message.role == "event"]
    assert events == snapshot(
        [
            "interrupted: the server stopped during this run; it resumes to carry out the decided calls"
        ]
    )


async def test_cancel_ends_every_call_and_approval_and_refuses_later_decisions(
    store: SQLStore,
) -> None:
    run = Claim.new(store.runner)
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=run)
    await store.append(t.id, run, answer("c1"), approvals=[approval(t.id, "c1")])
    assert await store.pause(t.id, run)
    settled = await store.settle(t.id, claim=None, cancel=True)
    with pytest.raises(Conflict, match="cancelled by cancel_run"):
        await store.decide(t.id, t.id, "c1", approve=True, reason=None, claim=run)
    results = [h.message.content for h in await store.messages(t.id) if h.message.role == "tool"]
    assert settled is not None and settled.status == "cancelled"
    assert results == [STOPPED_BEFORE]
    assert (await store.approvals(t.id))[0].status == "cancelled"
    assert await store.pending_in_tree(t.id) == []


async def test_a_stop_request_refuses_the_runs_next_step_but_not_its_answer(
    store: SQLStore,
) -> None:
    run = Claim.new(store.runner)
    t = await store.create_thread(agent="a", owner="o", first_message="hi", claim=run)
    assert await store.request_stop(t.id, run.token)
    assert not await store.request_stop(t.id, "cl_someone_else")
    assert [s.id for s in await store.stop_requests()] == [t.id]
    with pytest.raises(StopRequested):
        await store.append(t.id, run, answer("c1"), started("c1"))
    await store.append(t.id, run, Message(role="assistant", content="done anyway"), complete=True)
    done = await store.thread(t.id)
    assert done is not None and (done.status, done.stop_requested) == ("completed", False)


async def test_every_transition_is_written_down() -> None:
    assert sorted((a or "-", b, sorted(who)) for (a, b), who in TRANSITIONS.items()) == snapshot(
        [
            ("-", "running", ["chat"]),
            ("budget_exceeded", "running", ["chat"]),
            ("cancelled", "running", ["chat"]),
            ("completed", "running", ["chat"]),
            ("failed", "running", ["chat"]),
            ("needs_approval", "cancelled", ["cancel"]),
            ("needs_approval", "running", ["approve", "recovery", "run"]),
            ("running", "budget_exceeded", ["run"]),
            ("running", "cancelled", ["cancel", "recovery", "run"]),
            ("running", "completed", ["run"]),
            ("running", "failed", ["recovery", "run"]),
            ("running", "needs_approval", ["recovery", "run"]),
        ]
    )


async def test_sqlite_leases_end_with_their_process(tmp_path: Path) -> None:
    server = await open_store(tmp_path / "t.db")
    cli = await open_store(tmp_path / "t.db")
    assert await cli.alive(server.runner)
    await server.close()  # the process ends (its lock goes with it)
    assert not await cli.alive(server.runner)
    await cli.close()


async def test_postgresql_leases_expire_unless_renewed(pg_cluster: str) -> None:
    from tests.postgres import fresh_database

    url = await fresh_database(pg_cluster)
    a = await open_store(url, lease_seconds=30)
    b = await open_store(url, lease_seconds=30)
    assert await b.alive(a.runner)

    async def expire(tx: Tx) -> None:
        await tx.execute("UPDATE runners SET expires_at = 0 WHERE id=?", (a.runner,))

    await b.db.transaction("test", expire)  # as if a stopped renewing it
    assert not await b.alive(a.runner)
    await b.close()
    assert not await a.alive(b.runner)  # a clean stop removes the lease at once
    await a.close()


async def test_without_file_locks_sqlite_processes_lease_through_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no flock: the server and `agents-mcp chat` sharing a file must still
    see each other alive (or they would settle each other's runs), through leases kept
    in the database, as replicas do on PostgreSQL."""
    from agents_mcp.store.leases import TableLeases

    monkeypatch.setattr("agents_mcp.store.leases.fcntl", None)
    server = await open_store(tmp_path / "t.db", lease_seconds=30)
    cli = await open_store(tmp_path / "t.db", lease_seconds=30)
    assert isinstance(server.leases, TableLeases)
    assert await cli.alive(server.runner)
    await server.close()  # a clean stop takes its lease away at once
    assert not await cli.alive(server.runner)
    await cli.close()


async def test_a_process_that_finds_its_own_lease_expired_stops_its_runs(
    pg_cluster: str,
) -> None:
    """A replica that stalled past its lease may have had its threads settled by others:
    its heartbeat notices and stops its runs."""
    import anyio

    from tests.postgres import fresh_database

    store = await open_store(await fresh_database(pg_cluster), lease_seconds=2)
    lost = anyio.Event()
    store.leases.on_lost = lost.set

    async def expire(tx: Any) -> None:
        await tx.execute("UPDATE runners SET expires_at = 0 WHERE id=?", (store.runner,))

    try:
        await store.db.transaction("test", expire)  # as if it had stalled that long
        with anyio.fail_after(10):
            await lost.wait()
    finally:
        await store.close()


async def test_the_undecided_calls_of_a_page_of_threads_in_one_read(store: SQLStore) -> None:
    run = Claim.new(store.runner)
    root = await store.create_thread(agent="boss", owner="o", first_message="hi", claim=run)
    child = await store.create_thread(
        agent="scribe", owner="o", first_message="do", claim=run, parent=(root.id, "d1")
    )
    await store.append(root.id, run, answer("r1"), approvals=[approval(root.id, "r1")])
    await store.append(child.id, run, answer("c1"), approvals=[approval(child.id, "c1")])
    other = await store.create_thread(agent="boss", owner="o", first_message="x", claim=run)
    found = await store.pending_in_trees([root.id, other.id])
    assert {k: [(a.call_id, a.via) for a in v] for k, v in found.items()} == {
        root.id: [("r1", ("boss",)), ("c1", ("boss", "scribe"))]
    }


async def test_postgresql_ignores_sqlite_durability_and_says_so(
    pg_cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``--db postgresql://…`` with a config asking for commits that may be lost: the
    server's own durability applies, and the log says the key was ignored."""
    from tests.postgres import fresh_database

    url = await fresh_database(pg_cluster)
    store = await open_store(url, sqlite_durability="may-lose-last-commits")
    try:
        claim = Claim.new(store.runner)
        await store.create_thread(agent="a", owner="o", first_message="hi", claim=claim)
    finally:
        await store.close()
    assert "sqlite_durability = 'may-lose-last-commits' is ignored" in caplog.text
