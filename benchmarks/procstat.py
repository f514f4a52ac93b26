"""CPU time and memory of process trees, read from ``/proc`` (Linux, standard library only).

CPU of a tree = the sum, over every live process in it, of the CPU time of its live
threads, read in nanoseconds from ``/proc/<pid>/task/<tid>/schedstat`` (the scheduler's own
``sum_exec_runtime``, user and system), plus ``cutime + cstime`` (children it has reaped,
in clock ticks). Each exited process is counted once, in its reaper; live children are
counted by themselves. Between two readings, CPU is summed per thread (:func:`used_ms`),
so a thread that exits in between loses only what it used since the first reading.

``utime + stime`` of ``/proc/<pid>/stat`` counts in clock ticks (10 ms): two readings of
three processes around a batch of ten 15 ms conversations would be off by up to 6 ms per
conversation, which is why the nanosecond clock is used where the kernel offers it
(``schedstat``; else ticks, and callers should measure bigger batches).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    cpu_ms: float
    """CPU used so far by the process and the children it reaped."""
    threads_ms: dict[str, float] | None = None
    """Each live thread's CPU (nanosecond clock), None when counted in ticks."""
    reaped_ms: float = 0.0
    """``cutime + cstime`` (with ``threads_ms``)."""


def _threads_ms(pid: int) -> dict[str, float] | None:
    """CPU ms of each live thread of ``pid`` from ``schedstat`` (None: not available)."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                out[tid] = int(f.read().split()[0]) / 1e6
        except (OSError, ValueError, IndexError):
            if tid == str(pid):
                return None
    return out


def stat(pid: int, *, precise: bool = False) -> ProcStat | None:
    """``precise``: threads' CPU from ``schedstat`` (nanoseconds), else clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    threads = _threads_ms(pid) if precise else None
    if threads is None:
        ticks = sum(int(x) for x in fields[11:15])
        return ProcStat(pid=pid, ppid=int(fields[1]), cpu_ms=ticks * _TICK_MS)
    reaped = (int(fields[13]) + int(fields[14])) * _TICK_MS
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        cpu_ms=sum(threads.values()) + reaped,
        threads_ms=threads,
        reaped_ms=reaped,
    )


def used_ms(before: ProcStat | None, after: ProcStat) -> float:
    """CPU the process used between two readings. Per thread with the nanosecond clock, so
    a thread that exited in between loses only what it used since ``before``, not all its
    lifetime's CPU."""
    if before is None:
        return after.cpu_ms
    if before.threads_ms is None or after.threads_ms is None:
        return after.cpu_ms - before.cpu_ms
    own = sum(v - before.threads_ms.get(t, 0.0) for t, v in after.threads_ms.items())
    return own + after.reaped_ms - before.reaped_ms


PRECISE = _threads_ms(os.getpid()) is not None
"""Whether this kernel reports thread CPU time in nanoseconds (``schedstat``)."""


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            out[int(name)] = int(raw[raw.rfind(b")") + 2 :].split()[1])
    return out


def tree(pid: int) -> list[ProcStat]:
    """``pid`` and all its live descendants, with their CPU (nanosecond clock if any)."""
    children: dict[int, list[int]] = {}
    for p, ppid in _parents().items():
        children.setdefault(ppid, []).append(p)
    found: list[ProcStat] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        s = stat(p, precise=PRECISE)
        if s is not None:
            found.append(s)
            todo.extend(children.get(p, []))
    return found


def tree_cpu_ms(pid: int) -> float:
    """CPU milliseconds used so far by ``pid`` and its descendants (see module doc)."""
    return sum(s.cpu_ms for s in tree(pid))


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def find_in_tree(pid: int, needle: str) -> int | None:
    """The first descendant of ``pid`` (or itself) whose command line contains ``needle``."""
    for s in tree(pid):
        if needle in cmdline(s.pid):
            return s.pid
    return None


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of one process, in KiB."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def children(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    return [s.pid for s in tree(pid) if s.ppid == pid]
