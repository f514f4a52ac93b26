"""CPU time and memory of process trees, read from ``/proc`` (Linux, standard library only).

CPU of a tree = the sum, over every live process in it, of ``utime + stime`` (its own
threads, including exited ones) plus ``cutime + cstime`` (children it has reaped). Each
exited process is counted once, in its reaper; live children are counted by themselves.
Resolution is one clock tick (10 ms), so callers measure batches, not single calls.
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
    """utime + stime + cutime + cstime."""


def stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ProcStat(pid=pid, ppid=int(fields[1]), cpu_ms=ticks * _TICK_MS)


def _all() -> dict[int, ProcStat]:
    out: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = stat(int(name))
            if s is not None:
                out[s.pid] = s
    return out


def tree(pid: int) -> list[ProcStat]:
    """``pid`` and all its live descendants."""
    procs = _all()
    children: dict[int, list[int]] = {}
    for s in procs.values():
        children.setdefault(s.ppid, []).append(s.pid)
    found: list[ProcStat] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in procs:
            found.append(procs[p])
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
