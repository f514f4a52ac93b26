"""Where a stdio server's stderr goes: ``<user log dir>/<name>.log``.

Never into agents-mcp's own output: over a terminal it would tear through ``chat``'s reply
and spinner. Each start appends a header line (``agents-mcp check`` shows what follows
the last one), and a file over 1 MB is moved to ``<name>.log.1`` first.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("agents_mcp.downstream")

LOG_HEADER = "---- agents-mcp started "
LOG_LIMIT = 1_000_000


def log_dir() -> Path:
    """Where stdio servers' stderr goes: platformdirs' user log dir, e.g.
    ``~/.local/state/agents-mcp/log`` on Linux, ``~/Library/Logs/agents-mcp`` on macOS."""
    import platformdirs

    return Path(platformdirs.user_log_dir("agents-mcp", appauthor=False))


def start_log(path: Path, command: str) -> Path | None:
    """Ready ``path`` for one more start of its server; None when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > LOG_LIMIT:
            path.replace(path.with_name(path.name + ".1"))
        with path.open("a", encoding="utf-8") as f:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            f.write(f"{LOG_HEADER}{stamp} (pid {os.getpid()}): {command}\n")
    except OSError as exc:
        log.warning("cannot write %s (%s); the server's stderr goes to ours", path, exc)
        return None
    return path


def last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` non-blank lines the server wrote to ``path`` since its last start."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    if LOG_HEADER not in text:
        return []
    lines = text[text.rfind(LOG_HEADER) :].splitlines()[1:]
    return [line for line in lines if line.strip()][-count:]
