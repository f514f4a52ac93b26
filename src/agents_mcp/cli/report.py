"""What ``agents-mcp check`` found: one row per item, shown as lines or as one JSON object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from agents_mcp.cli.terminal import Console


@dataclass(frozen=True)
class Row:
    ok: bool | None  # None: neither good nor bad (skipped, defaulted; a warning with a fix)
    item: str
    detail: str
    fix: str | None = None
    log: list[str] = field(default_factory=list)
    """The end of a failing server's stderr, from its log file."""
    notes: list[str] = field(default_factory=list)
    """More about the item, one line each (an agent file's ignored fields)."""


@dataclass
class Report:
    """What ``check`` found, shown as lines or as one JSON object."""

    path: Path
    rows: list[Row] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(r.ok is False for r in self.rows)

    @property
    def warnings(self) -> int:
        """Rows that are not failures but come with something to do."""
        return sum(r.ok is None and r.fix is not None for r in self.rows)

    def as_json(self) -> str:
        data = {
            "config": str(self.path),
            "ok": self.problems == 0,
            "problems": self.problems,
            "warnings": self.warnings,
            "checks": [asdict(r) for r in self.rows],
            "agents": self.agents,
            "agent_files": self.files,
        }
        return json.dumps(data, indent=2, ensure_ascii=False)


class Lines:
    """The report as lines on stdout (nothing with ``--json``)."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet

    def line(self, text: str | Text = "") -> None:
        if not self.quiet:
            self.console.line(text)

    def rows(self, report: Report, rows: list[Row]) -> None:
        report.rows += rows
        width = max((len(r.item) for r in rows), default=0)
        pad = " " * (width + 4)
        for r in rows:
            self.line(Text.assemble(self.console.mark(r.ok), f" {r.item.ljust(width)}  {r.detail}"))
            if r.log:
                self.line(f"{pad}log: {r.log[0]}")
                for line in r.log[1:]:
                    self.line(f"{pad}     {line}")
            for note in r.notes:
                self.line(f"{pad}{note}")
            if r.fix:
                self.line(f"{pad}fix: {r.fix}")
