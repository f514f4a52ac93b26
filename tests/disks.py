"""Disks that fail the way real ones do: read-only, and full.

As root (as in CI) both are small tmpfs mounts, since root writes through file modes;
otherwise a directory without write permission stands for the read-only one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _mount(where: Path, options: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def readonly_dir() -> Iterator[Path]:
    """An existing directory nobody may write into."""
    where = Path(tempfile.mkdtemp(prefix="agents-mcp-ro-"))
    try:
        if os.geteuid() == 0:
            _mount(where, "ro,size=1m")
            try:
                yield where
            finally:
                subprocess.run(["umount", str(where)], check=False)
        else:
            where.chmod(0o555)
            yield where
    finally:
        with contextlib.suppress(OSError):
            where.chmod(0o755)
        with contextlib.suppress(OSError):
            where.rmdir()


@contextlib.contextmanager
def small_disk(size: str = "3m") -> Iterator[Path]:
    """A directory on a disk of ``size`` (root only: a tmpfs mount)."""
    if os.geteuid() != 0:
        raise RuntimeError("a small disk needs root (a tmpfs mount); CI runs as root")
    where = Path(tempfile.mkdtemp(prefix="agents-mcp-disk-"))
    _mount(where, f"size={size}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` until about ``leave`` bytes are free; returns the filler file."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler
