"""``[server]``: agents-mcp's own server: database, HTTP auth and limits."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agents_mcp.config.base import (
    _BAD_HOST,
    _BAD_ORIGIN,
    LOCAL,
    ApprovalMode,
    HttpUrl,
    OwnerName,
    _check,
    _err,
    _fail,
    _is_host,
    _is_origin,
    _Model,
)
from agents_mcp.config.database import db_location, is_postgres
from agents_mcp.config.errors import Loc
from agents_mcp.config.usage import ServerBudgets, TelemetrySettings

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
MIN_LEASE_SECONDS = 10.0
"""The shortest ``lease_seconds``: 3 s was seen to expire under a live replica at load 8."""


class TokenConfig(_Model):
    """A bearer token of one owner: ``[server.tokens.<owner>]``."""

    token: SecretStr | None = None
    sha256: Annotated[
        str | None,
        AfterValidator(lambda v: v.lower() if v is not None else v),
        _check(
            lambda v: v is None or bool(_HEX64.fullmatch(v)),
            "expected the 64 hex digits of the token's SHA-256",
        ),
    ] = None
    roles: list[OwnerName] = []

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.token is None) == (self.sha256 is None):
            what = "has both token and sha256" if self.token else "needs token or sha256"
            _fail([((), f'{what}; use token = "${{VAR}}" or sha256 = "<64 hex digits>"')])
        if self.token is not None and not self.token.get_secret_value().strip():
            _fail([(("token",), "empty token (is its environment variable empty?)")])
        return self

    def digest(self) -> str:
        """The SHA-256 of the token, as 64 lowercase hex digits."""
        if self.sha256 is not None:
            return self.sha256
        assert self.token is not None
        return hashlib.sha256(self.token.get_secret_value().encode()).hexdigest()


JWTAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class JWTConfig(_Model):
    """``[server.jwt]``: accept JWT access tokens of an OAuth 2.1 authorization server."""

    jwks_url: HttpUrl | None = None
    public_key: str | None = Field(None, repr=False)
    issuer: str = Field(min_length=1)
    audience: str | list[str] = Field(min_length=1)
    owner_claim: str = Field("sub", min_length=1)
    roles_claim: str = Field("roles", min_length=1)
    authorization_servers: list[HttpUrl] = []
    """For the protected-resource metadata document; default: the issuer."""
    algorithm: JWTAlgorithm = "RS256"
    resource_url: HttpUrl | None = None
    """The public URL of our MCP endpoint (behind a proxy); default ``http://host:port/mcp``."""

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if (self.jwks_url is None) == (self.public_key is None):
            what = "has both jwks_url and public_key" if self.jwks_url else "needs a key"
            _fail([((), f"{what}; set jwks_url or public_key (PEM), not both")])
        if self.public_key is not None and "-----BEGIN" not in self.public_key:
            _fail([(("public_key",), "expected a PEM public key (-----BEGIN PUBLIC KEY-----…)")])
        if self.resource_url is not None and not self.resource_url.rstrip("/").endswith("/mcp"):
            _fail([(("resource_url",), "expected the URL of the /mcp endpoint, ending in /mcp")])
        if not self.authorization_servers and not self.issuer.startswith(("http://", "https://")):
            _fail([(("authorization_servers",), "required when issuer is not an http(s) URL")])
        return self

    @property
    def servers(self) -> list[str]:
        """The authorization servers named in the metadata document."""
        return list(self.authorization_servers) or [self.issuer]


def _db(value: str) -> str:
    try:
        return db_location(value)
    except ValueError as exc:
        raise _err("config", str(exc)) from None


class ServerSettings(_Model):
    """Settings of agents-mcp's own MCP server."""

    auth_tokens: list[SecretStr] = []
    tokens: dict[OwnerName, TokenConfig] = {}
    """Bearer tokens by owner: ``[server.tokens.alice]``."""
    jwt: JWTConfig | None = None
    require_tokens: bool = False
    """Refuse to serve HTTP without a token, even on loopback."""
    allowed_hosts: list[Annotated[str, _check(_is_host, _BAD_HOST)]] = []
    """HTTP: more ``Host`` header values to accept (a reverse proxy's public name, a LAN
    name), besides loopback and the address a request came in on; ``*.example.com``
    patterns work."""
    allowed_origins: list[Annotated[str, _check(_is_origin, _BAD_ORIGIN)]] = []
    """HTTP: browser origins (``https://app.example.com``) allowed to call the server
    besides its own."""
    db: Annotated[str, AfterValidator(_db)] | None = None
    """The thread database: a SQLite file (relative to the config file; also as
    ``sqlite:PATH``) or a ``postgresql://user@host:port/db`` URL (``${VAR}`` for its
    password); see :mod:`agents_mcp.config.database`."""
    sqlite_durability: Literal["full", "may-lose-last-commits"] = "full"
    """SQLite: ``full`` answers a write once it is on disk, so a committed approval,
    decision or "started" record survives a power loss; ``may-lose-last-commits`` does not
    wait for the disk (faster where its syncs are the limit), and the last commits before
    a power loss or an OS crash may be lost. Refused with a PostgreSQL ``db``."""
    stateless_http: bool = False
    """HTTP: every request stands alone (no MCP session), so any replica behind a load
    balancer serves any request of a handshake-era client too; inline elicitation is then
    not used. 2026-07-28 clients are sessionless anyway."""
    lease_seconds: float = Field(15.0, le=600)
    """PostgreSQL: how long a replica that stopped renewing its lease (it died) still
    counts as alive; then another replica settles and resumes its threads. At least
    :data:`MIN_LEASE_SECONDS`."""
    retain_days: float | None = Field(None, gt=0)
    """Delete finished threads (completed, failed, cancelled) not updated for this many
    days, with their delegations, messages and approvals; None (the default) keeps them."""
    name: str = Field("agents-mcp", min_length=1)
    wait_seconds: float = Field(45.0, ge=0, le=600)
    """How long a tool call waits for a run before answering ``running``."""
    progress_interval: float = Field(1.0, ge=0, le=60)
    """Seconds between two progress notifications to one request (the latest status
    wins); 0 sends every step's status."""
    reply_budget: int = Field(20_000, ge=200)
    """Characters of the reply put in a tool result; the full reply stays readable."""
    tool_result_budget: int = Field(50_000, ge=200)
    """Characters of one downstream tool result shown to the model."""
    max_stored_result: int = Field(1_000_000, ge=200)
    """Characters of one tool result (or reply) kept in the thread; the rest is dropped,
    with a note saying how much. At least ``tool_result_budget``: the model's view of a
    result is always read back from what is stored."""
    approval_prompt: Literal["auto", "structured"] = "structured"
    """``auto``: ask inline by elicitation where the client supports it."""
    elicitation_timeout: float = Field(20.0, gt=0, le=600)
    task_ttl_seconds: int = Field(86_400, ge=60)
    """MCP tasks: how long a task id answers after the call that made it (``ttlMs``)."""
    task_poll_interval: float = Field(1.0, ge=0.01, le=60)
    """MCP tasks: how often clients should poll ``tasks/get`` (``pollIntervalMs``)."""
    question_timeout: float = Field(3600.0, gt=0, le=7 * 86400)
    """How long a downstream server's question waits for the person's answer."""
    approver: Literal["model", "person"] = "model"
    """Who decides approvals for clients that render MCP Apps: ``model`` (the calling model
    calls ``approve_call``, as for every other client) or ``person`` (``approve_call`` is
    offered to the view only, where the person presses Approve or Deny). Clients without
    MCP Apps always get the ``model`` flow."""
    public_url: HttpUrl | None = None
    """HTTP: the URL browsers reach this server at (behind a proxy, the public one). A
    downstream sign-in (``auth = "oauth"``) returns to ``<public_url>/oauth/callback``;
    default ``http://<host>:<port>``."""
    oauth_callback_port: int = Field(33418, ge=1024, le=65535)
    """stdio and the CLI: the loopback port a downstream sign-in returns to
    (``http://127.0.0.1:<port>/oauth/callback``), listened on only while one waits."""
    max_depth: int = Field(3, ge=1, le=10)
    """How deep agents may delegate to agents."""
    max_total_llm_requests: int = Field(100, ge=1)
    """LLM requests one top-level run may make, delegations included."""
    budgets: ServerBudgets = Field(default_factory=ServerBudgets)
    """What each owner may spend per UTC day (``[server.budgets]``)."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """Traces and metrics over OTLP (``[server.telemetry]``; see docs/usage-and-traces.md)."""
    dashboard: bool = True
    """stdio: also serve the dashboard on a loopback port, protected by a key that is in
    the links of results that wait for a person."""
    dashboard_port: int = Field(0, ge=0, le=65535)
    """The dashboard's port over stdio; 0: a free port the system picks."""
    agents_from: list[str] = []
    """Folders of agent files to serve as agents too: Claude Code subagents
    (``.claude/agents``), GitHub Copilot custom agents (``.github/agents``) and Codex
    custom agents (``.codex/agents``), relative to the config file (``~`` works)."""
    agents_from_approval: ApprovalMode = "always"
    """``require_approval`` of the agents read from files."""

    @field_validator("lease_seconds")
    @classmethod
    def _lease_floor(cls, seconds: float) -> float:
        if seconds < MIN_LEASE_SECONDS:
            raise _err(
                "lease_too_short",
                f"must be at least {MIN_LEASE_SECONDS:g}: a replica renews its lease every"
                " third of it, and a renewal can wait seconds on a loaded host or a busy"
                " database (its lock timeout is 5 s); a shorter lease expires under a live"
                " replica, and the others then stop and take over its runs",
            )
        return seconds

    @field_validator("name")
    @classmethod
    def _fits_client_tool_names(cls, name: str) -> str:
        # Clients call our tools mcp__<server name>__<tool> and reject names over 64.
        longest = f"mcp__{name}__chat_with_agent"
        if len(longest) > 64:
            room = 64 - len("mcp____chat_with_agent")
            raise _err(
                "name_too_long",
                f"makes client tool names like {longest!r} longer than 64 characters;"
                f" use at most {room} characters",
            )
        return name

    @model_validator(mode="after")
    def _stored_covers_shown(self) -> Self:
        if self.max_stored_result < self.tool_result_budget:
            _fail(
                [
                    (
                        ("max_stored_result",),
                        f"must be at least tool_result_budget ({self.tool_result_budget}):"
                        " the model is shown what is stored",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _durability_of_sqlite_only(self) -> Self:
        if self.sqlite_durability != "full" and is_postgres(self.db or ""):
            _fail(
                [
                    (
                        ("sqlite_durability",),
                        "applies to a SQLite database only; with PostgreSQL its server decides"
                        " (synchronous_commit): remove sqlite_durability",
                    )
                ]
            )
        return self

    @field_validator("auth_tokens")
    @classmethod
    def _no_empty_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        empty = [i for i, t in enumerate(tokens) if not t.get_secret_value().strip()]
        _fail(((i,), "empty token (is its environment variable empty?)") for i in empty)
        return tokens

    @field_validator("tokens")
    @classmethod
    def _distinct_owners(cls, tokens: dict[str, TokenConfig]) -> dict[str, TokenConfig]:
        problems: list[tuple[Loc, str]] = []
        seen: dict[str, str] = {}
        for owner, entry in tokens.items():
            if owner == LOCAL:
                problems.append(
                    (
                        (owner,),
                        f"the owner name {LOCAL!r} is reserved for stdio,"
                        " the CLI and loopback HTTP without tokens",
                    )
                )
            elif entry.digest() in seen:
                problems.append(((owner,), f"the same token as owner {seen[entry.digest()]!r}"))
            seen.setdefault(entry.digest(), owner)
        _fail(problems)
        return tokens

    @property
    def authenticates(self) -> bool:
        """Whether HTTP callers are identified by tokens (static or JWT)."""
        return bool(self.auth_tokens or self.tokens or self.jwt)

    @model_validator(mode="after")
    def _tokens_to_require(self) -> Self:
        if self.require_tokens and not self.authenticates:
            _fail(
                [
                    (
                        ("require_tokens",),
                        "needs tokens to require: add [server.tokens.<owner>]"
                        ' (token = "${VAR}" or sha256), auth_tokens or [server.jwt]',
                    )
                ]
            )
        return self


def _beside(path: str, info: ValidationInfo) -> str:
    """``path`` resolved against the config file's directory (if we know it)."""
    config_file = info.data.get("path")
    if config_file is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.abspath(Path(config_file).parent), path))
