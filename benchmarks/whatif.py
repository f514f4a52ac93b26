"""Prototypes of the fixes the benchmark suggests, applied to agents-mcp at run time.

``python -m benchmarks.whatif --patches drain,progress,sqlite,cache serve --config ...``
patches the installed agents-mcp in this process only, then runs its CLI. Nothing under
``src/`` changes: these are measurements of proposed changes (rows labelled "what-if" in
the report), not the product. Each patch says which function it stands in for.

* ``drain``: ``llm.OpenAIChatModel._read_stream`` reads the SSE body to its end instead of
  ``break`` at ``[DONE]``, so httpx2 returns the connection to its pool instead of closing it
  (otherwise every LLM request opens a new TCP, and in production TLS, connection).
* ``progress``: ``server._progress`` sends at most one progress notification per second.
* ``sqlite``: SQLite statements run on the event-loop thread (``sqlite3`` directly) instead
  of one aiosqlite thread round trip per ``execute``/``fetch*`` (WAL with
  ``synchronous=NORMAL`` makes each statement microseconds, without fsync).
* ``cache``: ``Store.messages`` answers from a per-thread transcript cache kept current by
  the store's own writes, instead of reading and decoding the whole thread at every step.
* ``wire``: ``loop._prompt`` and ``llm._wire_messages`` reuse what they built for messages
  already sent, so a step converts only the new messages (with ``cache``).
"""

from __future__ import annotations
import __future__

import dataclasses
import inspect
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

PATCHES = ("drain", "progress", "sqlite", "cache", "wire")


def patch_drain() -> None:
    from agents_mcp import llm

    source = textwrap.dedent(inspect.getsource(llm.OpenAIChatModel._read_stream))
    fixed, n = _replace_break(source)
    if n != 1:
        raise RuntimeError("drain: the [DONE] break was not found; the patch is stale")
    namespace: dict[str, Any] = {}
    flags = __future__.annotations.compiler_flag
    exec(compile(fixed, llm.__file__, "exec", flags=flags, dont_inherit=True), vars(llm), namespace)
    llm.OpenAIChatModel._read_stream = namespace["_read_stream"]  # type: ignore[method-assign]


def _replace_break(source: str) -> tuple[str, int]:
    lines = source.splitlines()
    n = 0
    for i, line in enumerate(lines):
        if "[DONE]" in line:
            for j in range(i + 1, min(i + 4, len(lines))):
                if lines[j].strip() == "break":
                    lines[j] = lines[j].replace("break", "continue")
                    n += 1
                    break
    return "\n".join(lines) + "\n", n


def patch_progress(interval: float = 1.0) -> None:
    from agents_mcp import server

    original: Callable[..., Any] = server._progress

    def throttled(ctx: Any) -> Any:
        inner = original(ctx)
        last = -1e9

        async def report(*args: Any, **kwargs: Any) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < interval:
                return
            last = now
            await inner(*args, **kwargs)

        return report

    server._progress = throttled


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid


class _Connection:
    """The slice of ``aiosqlite.Connection`` the store uses, run inline."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def row_factory(self) -> Any:
        return self._conn.row_factory

    @row_factory.setter
    def row_factory(self, value: Any) -> None:
        self._conn.row_factory = value

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        return _Cursor(self._conn.execute(sql, parameters))

    async def executemany(self, sql: str, parameters: Any) -> _Cursor:
        return _Cursor(self._conn.executemany(sql, parameters))

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> list[Any]:
        return self._conn.execute(sql, parameters).fetchall()

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()


def patch_sqlite() -> None:
    import aiosqlite  # the store calls aiosqlite.connect at open time

    async def connect(database: str, **kwargs: Any) -> _Connection:
        return _Connection(sqlite3.connect(database, check_same_thread=False, **kwargs))

    aiosqlite.connect = connect  # type: ignore[assignment]


# Store methods that never change stored messages (reads, or writes to other tables).
_NO_MESSAGE_WRITES = frozenset(
    [
        "open",
        "close",
        "messages",
        "get_thread",
        "thread",
        "waiting_threads",
        "child_for_call",
        "tree",
        "root_of",
        "list_threads",
        "approvals",
        "pending_approvals",
        "grants",
        "set_status",
        "decide",
        "add_approvals",
        "relink",
        "create_thread",
    ]
)


def patch_cache() -> None:
    """Any other public coroutine of ``Store`` drops the cached transcript of the thread in
    its first argument (all of them when it has none), so unknown writers stay correct."""
    from agents_mcp.messages import Message
    from agents_mcp.store import Store, StoredMessage

    cache: dict[tuple[int, str], list[Any]] = {}

    def wrap(name: str, after: Callable[..., None]) -> None:
        original = getattr(Store, name)

        async def method(self: Store, *args: Any, **kwargs: Any) -> Any:
            result = await original(self, *args, **kwargs)
            after(self, result, *args, **kwargs)
            return result

        setattr(Store, name, method)

    original_messages = Store.messages

    async def messages(self: Store, thread_id: str) -> list[Any]:
        key = (id(self), thread_id)
        if key not in cache:
            cache[key] = list(await original_messages(self, thread_id))
        return list(cache[key])

    def appended(self: Store, indexes: list[int], thread_id: str, *msgs: Any) -> None:
        rows = cache.get((id(self), thread_id))
        if rows is not None:
            rows += [StoredMessage(index=i, message=m) for i, m in zip(indexes, msgs, strict=True)]

    def user_appended(self: Store, _: Any, thread_id: str, content: str, **kw: Any) -> None:
        rows = cache.get((id(self), thread_id))
        if rows:
            message = Message(role="user", content=content)
            rows.append(StoredMessage(index=rows[-1].index + 1, message=message))

    def finished(self: Store, _: Any, thread_id: str, key: Any, content: str, **kw: Any) -> None:
        """``finish_call(thread_id, call_id, ...)`` or the older ``finish_tool(thread_id, index, ...)``."""
        rows = cache.get((id(self), thread_id))
        if rows is None:
            return
        for pos, row in enumerate(rows):
            m = row.message
            if (
                (row.index == key)
                if isinstance(key, int)
                else (m.role == "tool" and m.tool_call_id == key and m.status == "pending")
            ):
                status = "complete" if kw.get("ok", True) else "error"
                message = dataclasses.replace(m, content=content, status=status)
                rows[pos] = StoredMessage(index=row.index, message=message)
                return
        cache.pop((id(self), thread_id), None)

    def drop(self: Store, _: Any, *args: Any, **kw: Any) -> None:
        if args and isinstance(args[0], str):
            cache.pop((id(self), args[0]), None)
        else:
            cache.clear()

    handled: dict[str, Callable[..., None]] = {"append": appended, "append_user": user_appended}
    handled |= {"finish_call": finished, "finish_tool": finished}
    Store.messages = messages  # type: ignore[method-assign]
    for name, _ in inspect.getmembers(Store, inspect.iscoroutinefunction):
        if name.startswith("_") or name in _NO_MESSAGE_WRITES:
            continue
        wrap(name, handled.get(name, drop))


def patch_wire() -> None:
    """Reuse the prompt and wire pieces of messages already sent (needs ``cache``, whose
    stored messages keep their identity from step to step)."""
    from agents_mcp import llm, loop

    original_prompt = loop._prompt
    original_wire = llm._wire_messages
    pieces: dict[int, tuple[Any, tuple[Any, ...], int, list[Any]]] = {}
    wired: dict[int, tuple[Any, dict[str, Any]]] = {}

    def prompt(history: Any, budget: int) -> list[Any]:
        results = {h.message.tool_call_id: h for h in history if h.message.role == "tool"}
        out: list[Any] = []
        for h in history:
            if h.message.role == "tool":
                continue
            deps = tuple(results.get(c.id) for c in h.message.tool_calls)
            hit = pieces.get(id(h))
            if (
                hit is None
                or hit[0] is not h
                or hit[2] != budget
                or any(a is not b for a, b in zip(hit[1], deps, strict=True))
            ):
                made = original_prompt([h, *(d for d in deps if d is not None)], budget)
                hit = (h, deps, budget, made)
                pieces[id(h)] = hit
            out += hit[3]
        return out

    def wire(request: Any) -> list[dict[str, Any]]:
        head = original_wire(dataclasses.replace(request, messages=[]))
        out = list(head)
        for m in request.messages:
            hit = wired.get(id(m))
            if hit is None or hit[0] is not m:
                (made,) = original_wire(dataclasses.replace(request, system="", messages=[m]))
                hit = (m, made)
                wired[id(m)] = hit
            out.append(hit[1])
        return out

    loop._prompt = prompt
    llm._wire_messages = wire


def check(names: list[str]) -> None:
    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise SystemExit(f"unknown patch {unknown[0]!r}; known: {', '.join(PATCHES)}")


def apply(names: list[str]) -> None:
    check(names)
    for name in names:
        globals()[f"patch_{name}"]()


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--patches":
        raise SystemExit("usage: python -m benchmarks.whatif --patches a,b serve ...")
    apply([p for p in args[1].split(",") if p])
    from agents_mcp.cli import main as cli_main

    raise SystemExit(cli_main(args[2:]))


if __name__ == "__main__":
    main()
