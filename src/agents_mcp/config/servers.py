"""``[mcpServers.<name>]``: downstream MCP servers, in Claude Desktop's entry shape."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    model_validator,
)

from agents_mcp.config.base import (
    _HTTP_KEYS,
    _STDIO_KEYS,
    HttpUrl,
    LocalPath,
    Transport,
    _fail,
    _Model,
)
from agents_mcp.config.errors import Loc


class DownstreamServerConfig(_Model):
    """A downstream MCP server: stdio (``command``…) or streamable HTTP (``url``…)."""

    command: str | None = Field(None, min_length=1)
    args: list[str] = []
    env: dict[str, str] = Field(default_factory=dict, repr=False)  # often carries tokens
    cwd: LocalPath | None = None
    url: HttpUrl | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # often carries tokens
    type: Transport | None = None
    transport: Transport | None = None
    timeout: float = Field(60.0, gt=0)
    init_timeout: float = Field(30.0, gt=0)
    protocol: Literal["legacy", "auto", "2026-07-28"] = "legacy"
    kind: Literal["mcp", "agents-mcp"] = "mcp"
    """``agents-mcp``: another agents-mcp, whose results may relay approvals and whose
    running threads we follow; any other server's results are ordinary tool results."""
    required: bool = False
    """Fail a run (``downstream_unavailable``) when this server cannot be reached,
    rather than go on without its tools."""
    max_result_bytes: int = Field(16 * 1024 * 1024, gt=0)
    """HTTP: the largest message (one server-sent event) accepted from the server; a
    bigger tool result reaches the model as a "too large" error."""

    @property
    def connection(self) -> Literal["stdio", "http"]:
        """How to connect: ``stdio`` (spawn ``command``) or ``http`` (streamable HTTP ``url``)."""
        return "stdio" if self.command is not None else "http"

    @model_validator(mode="after")
    def _check_connection(self) -> Self:
        if (self.command is None) == (self.url is None):
            what = "has both command and url" if self.command else "needs command or url"
            _fail([((), f"{what}; use {_STDIO_KEYS} for stdio or {_HTTP_KEYS} for HTTP")])
        stdio = self.connection == "stdio"
        errors: list[tuple[Loc, str]] = []
        only = "with url (HTTP), not command" if stdio else "with command (stdio), not url"
        for key in ("headers", "max_result_bytes") if stdio else ("args", "env", "cwd"):
            if key in self.model_fields_set and getattr(self, key):
                errors.append(((key,), f"only valid {only}"))
        for key in ("type", "transport"):
            declared = getattr(self, key)
            if declared is not None and (declared == "stdio") != stdio:
                valid = "'stdio'" if stdio else "'http' or 'streamable-http'"
                errors.append(
                    ((key,), f"{declared!r} contradicts the server's keys; valid: {valid}")
                )
        _fail(errors)
        return self


Provider = Literal["openai", "anthropic", "responses", "demo"]
