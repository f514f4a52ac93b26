"""What one agent file says, in a form shared by the three formats (:class:`Draft`), and
the notes a file collects on the way: each field we converted, ignored, or could not use.

The readers (``formats``) fill a draft from Claude Code, Copilot and Codex files; the
mapping (``mapping``) turns drafts into ``[agents.<name>]`` and ``[mcpServers.<name>]``
entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Format = Literal["claude-code", "copilot", "codex"]
FORMAT_NAMES: dict[Format, str] = {
    "claude-code": "Claude Code subagent",
    "copilot": "GitHub Copilot custom agent",
    "codex": "Codex custom agent",
}
NoteKind = Literal["converted", "ignored", "problem"]


@dataclass(frozen=True)
class Note:
    """One thing ``check`` says about a file: ``field`` (a key of the file, or ``tools``
    entry) was ``converted`` (how), ``ignored`` (why) or is a ``problem`` (what to do)."""

    field: str
    kind: NoteKind
    text: str


@dataclass(frozen=True)
class InlineServer:
    """A server the file defines, already in our ``[mcpServers]`` shape (not yet
    expanded), with the tools the file limits it to (None: all) or hides."""

    entry: dict[str, Any]
    allow: list[str] | None = None
    deny: list[str] = field(default_factory=list)


@dataclass
class Draft:
    """One agent file, read: the fields every format shares, before any mapping."""

    path: Path
    format: Format
    name: str
    description: str
    instructions: str
    models: list[str]
    """The model names it asks for, in order of preference ([]: inherit)."""
    servers: dict[str, InlineServer] = field(default_factory=dict)
    server_refs: list[str] = field(default_factory=list)
    """Servers named but not defined (Claude's ``mcpServers: [github]``): ours."""
    tools: list[str] | None = None
    """The tool references of its allowlist, as written; None: the field is absent."""
    deny: list[str] = field(default_factory=list)
    delegates: list[str] = field(default_factory=list)
    max_turns: int | None = None
    notes: list[Note] = field(default_factory=list)

    def note(self, key: str, kind: NoteKind, text: str) -> None:
        self.notes.append(Note(key, kind, text))


class Unreadable(Exception):
    """A file that is no agent at all (syntax, no front matter, a required field missing)."""
