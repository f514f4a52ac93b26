"""The configuration file: pydantic models for ``agents.toml`` (or ``.json``) and its loader.

::

    [mcpServers.<name>]   DownstreamServerConfig   the Claude Desktop entry shape
    [models.<name>]       ModelConfig              an LLM endpoint and the API it speaks
    [agents.<name>]       AgentConfig              what becomes one MCP tool
    [server]              ServerSettings           our own HTTP auth, database, name

:func:`load_config` parses the file, expands ``${VAR}`` / ``${VAR:-default}`` in string
values and validates everything, raising one :class:`ConfigError` with one
``file: key.path: problem`` line per problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agents_mcp._config_errors import Loc, describe, dotted, expand, keys, order, walk
from agents_mcp.errors import ConfigError
from agents_mcp.structured import schema_problem

ApprovalMode = Literal["always", "never", "read_only"]
Transport = Literal["stdio", "http", "streamable-http"]

SEPARATOR = "__"
"""Joins server and tool into the names offered to models: ``<server>__<tool>``."""

# Tools are offered as <server>__<tool> and split at the first "__", so a server name must
# not contain "__" nor end with "_" ("fs_" + "__x" would read as "fs" + "___x").
_SERVER = r"_?[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*"
_STDIO_KEYS = "command (plus args, env, cwd)"
_HTTP_KEYS = "url (plus headers)"
LOCAL = "local"
"""The owner over stdio, from the CLI and over loopback HTTP without tokens."""
_NO_AGENTS = "at least one agent is required: add an [agents.<name>] table (description, model)"


def _err(kind: str, message: str) -> PydanticCustomError:
    """A pydantic error with ``message`` verbatim (passed as context: braces need no escaping)."""
    return PydanticCustomError(kind, "{detail}", {"detail": message})


def _fail(errors: Iterable[tuple[Loc, str]]) -> None:
    """Raise ``errors`` at sub-locations; pydantic prefixes them with the enclosing key path."""
    if details := [
        InitErrorDetails(type=_err("config", m), loc=at, input=None) for at, m in errors
    ]:
        raise ValidationError.from_exception_data("Config", details)


def _listing(names: Iterable[str]) -> str:
    """``names`` sorted and comma-separated, for "valid: …" hints."""
    return ", ".join(sorted(names)) or "(none defined)"


def _check(test: Callable[[str], object], message: str) -> AfterValidator:
    """Reject strings failing ``test`` with ``message`` (``{value}`` is the string's repr)."""

    def check(value: str) -> str:
        if not test(value):
            raise _err("config", message.format(value=repr(value)))
        return value

    return AfterValidator(check)


_BAD_SERVER = (
    "invalid server name: use letters, digits, '-' and single '_' (not '__', not at the end), "
    "because tools are offered as <server>__<tool>"
)
_BAD_AGENT = "invalid agent name: use 1 to 64 letters, digits, '_' or '-'"
_BAD_RULE = "expected '<server>__<tool>' or '<server>__*', got {value}"
_BAD_URL = "expected an http:// or https:// URL"

_BAD_HOST = (
    "expected a host name or address, optionally with a port (no scheme, no path), got {value}"
)
_BAD_ORIGIN = (
    "expected an origin such as 'https://app.example.com' (scheme and host, no path), got {value}"
)


def _is_host(value: str) -> bool:
    return bool(value) and not any(c in value for c in "/ ")


def _is_origin(value: str) -> bool:
    scheme, sep, rest = value.partition("://")
    return value == "*" or (scheme in ("http", "https") and bool(sep) and _is_host(rest))


ServerName = Annotated[str, _check(re.compile(_SERVER).fullmatch, _BAD_SERVER)]
AgentName = Annotated[str, _check(re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch, _BAD_AGENT)]
RuleName = Annotated[str, _check(re.compile(rf"{_SERVER}{SEPARATOR}.+").fullmatch, _BAD_RULE)]
HttpUrl = Annotated[str, _check(lambda url: url.startswith(("http://", "https://")), _BAD_URL)]
LocalPath = Annotated[str, AfterValidator(os.path.expanduser)]  # made absolute by Config


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_API_KEY = "${ANTHROPIC_API_KEY:-}"
"""What ``api_key`` means for ``provider = "anthropic"`` when the entry does not say."""

DEFAULT_CONTEXT_TOKENS: dict[str, int] = {
    "openai": 128_000,
    "responses": 128_000,
    "anthropic": 200_000,
    "demo": 128_000,
}
"""``context_tokens`` when a model entry does not set it, by provider."""


def _stream_mode(value: Any) -> Any:
    if value is True or value is False or value == "auto":
        return value
    raise _err("stream", f"expected true, false or 'auto', got {value!r}")


class ModelConfig(_Model):
    """An LLM endpoint. ``provider = "demo"`` is the bundled scripted model and needs nothing."""

    provider: Provider = "openai"
    base_url: HttpUrl | None = None
    # "${OPENAI_API_KEY:-}" means no key: local endpoints need none.
    api_key: Annotated[SecretStr | None, BeforeValidator(lambda v: None if v == "" else v)] = None
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    timeout: float = Field(120.0, gt=0)
    stream: Annotated[bool | Literal["auto"], BeforeValidator(_stream_mode)] = "auto"
    """``"auto"``: stream only while someone shows the answer as it is written."""
    context_tokens: int = Field(gt=0)
    """The model's context window, in tokens (defaults by provider)."""
    extra: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        provider = data.get("provider", "openai")
        defaults: dict[str, Any] = {
            "context_tokens": DEFAULT_CONTEXT_TOKENS.get(provider, DEFAULT_CONTEXT_TOKENS["openai"])
        }
        if provider == "anthropic":
            defaults["base_url"] = ANTHROPIC_BASE_URL
        return {**defaults, **data}

    @model_validator(mode="after")
    def _endpoint_required(self) -> Self:
        required: tuple[str, ...] = ()
        if self.provider in ("openai", "responses"):
            required = ("base_url", "model")
        elif self.provider == "anthropic":
            required = ("model",)
        default = " (the default)" if self.provider == "openai" else ""
        missing = [k for k in required if getattr(self, k) is None]
        _fail(((k,), f"required for provider {self.provider!r}{default}") for k in missing)
        return self


class ApprovalRules(_Model):
    """Per-tool approval: exact ``server__tool`` names win over ``server__*``, then ``default``."""

    always: list[RuleName] = []
    never: list[RuleName] = []
    default: ApprovalMode = "always"

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = set(self.always) & set(self.never)
        _fail(
            (("never", i), "also in always; list a name in one only")
            for i, n in enumerate(self.never)
            if n in both
        )
        return self


def _approval_tag(value: Any) -> str | None:
    """Which form of ``require_approval`` this is (None: neither, reported as one error)."""
    if isinstance(value, str):
        return "mode"
    return "rules" if isinstance(value, Mapping | ApprovalRules) else None


ApprovalPolicy = Annotated[
    Annotated[ApprovalMode, Tag("mode")] | Annotated[ApprovalRules, Tag("rules")],
    Discriminator(
        _approval_tag,
        custom_error_type="approval_policy",
        custom_error_message="expected 'always', 'never', 'read_only' or a table with keys always, never, default",
    ),
]


def approval_required(policy: ApprovalPolicy, server: str, tool: str, read_only_hint: bool) -> bool:
    """Whether a call of ``server``'s ``tool`` must wait for a human decision."""
    if isinstance(policy, ApprovalRules):
        for name in (f"{server}{SEPARATOR}{tool}", f"{server}{SEPARATOR}*"):
            if name in policy.always:
                return True
            if name in policy.never:
                return False
        policy = policy.default
    return policy == "always" or (policy == "read_only" and not read_only_hint)


@dataclass(frozen=True)
class _Names:
    """The models/mcpServers keys of the Config being validated (None: not a table)."""

    models: frozenset[str] | None
    servers: frozenset[str] | None


# Set by Config while it validates, so each agent's references are checked (and reported at
# their own key path) together with every other error, instead of in a later pass that only
# runs once everything else is valid.
_NAMES: ContextVar[_Names | None] = ContextVar("agents_mcp_config_names", default=None)


def _own_servers(info: ValidationInfo, refs: Iterable[tuple[Loc, str]]) -> None:
    """Fail for each referenced server that is not in the agent's (valid) ``servers``."""
    if (servers := info.data.get("servers")) is not None:
        bad = [(loc, name) for loc, name in refs if name not in servers]
        _fail(
            (loc, f"server {n!r} is not one of this agent's servers; valid: {_listing(servers)}")
            for loc, n in bad
        )


class TextFile(_Model):
    """Text kept in a file: ``{ file = "prompts/x.md" }``, relative to the config file."""

    file: str


class AgentParams(_Model):
    """Per-agent request parameters, merged over the model's defaults."""

    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    extra: dict[str, Any] = {}

    def settings(self) -> dict[str, Any]:
        """What the LLM request carries on top of the model's defaults."""
        fields = self.model_dump(exclude={"extra"}, exclude_none=True)
        return {**fields, **self.extra}


class AgentConfig(_Model):
    """One agent, offered to the MCP caller as a tool."""

    description: str = Field(min_length=1)
    instructions: str = ""
    instructions_file: str | None = None
    model: str
    servers: list[str] = []
    tools: dict[str, list[str]] = {}
    require_approval: ApprovalPolicy = "always"
    # Clamped, not rejected: any number is a usable cap.
    max_iterations: Annotated[int, AfterValidator(lambda n: min(max(n, 1), 50))] = 12
    personalities: dict[str, str | TextFile] = {}
    default_personality: str | None = None
    params: AgentParams = Field(default_factory=AgentParams)
    on_cancel: Literal["detach", "stop"] = "detach"
    agents: list[str] = []
    """Other agents this one may delegate to, offered to its model as ``agent__<name>``."""
    access: list[AccessEntry] | None = None
    """Owners (``alice``) and roles (``role:research``) that may use this agent over HTTP;
    None: everyone. The ``local`` owner (stdio, the CLI) may always use every agent."""
    output_schema: dict[str, Any] | None = None
    """The JSON Schema every final answer must meet, unless a call names its own."""
    output_schema_file: str | None = None
    """The same from a JSON file (instead of ``output_schema``)."""

    @model_validator(mode="after")
    def _output_schema(self) -> Self:
        if self.output_schema is not None and self.output_schema_file:
            _fail([(("output_schema_file",), "set output_schema or output_schema_file, not both")])
        if self.output_schema is not None:
            problem = schema_problem(self.output_schema)
            _fail([(("output_schema",), problem)] if problem else [])
        return self

    @model_validator(mode="after")
    def _personality_choice(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.instructions and self.instructions_file:
            problems.append(
                (("instructions_file",), "set instructions or instructions_file, not both")
            )
        if (
            self.default_personality is not None
            and self.default_personality not in self.personalities
        ):
            valid = _listing(self.personalities) if self.personalities else "none defined"
            problems.append(
                (
                    ("default_personality",),
                    f"unknown personality {self.default_personality!r}; valid: {valid}",
                )
            )
        _fail(problems)
        return self

    def personality(self, name: str | None) -> str:
        """The text of personality ``name`` (or the default); '' when there is none."""
        chosen = name if name is not None else self.default_personality
        if chosen is None:
            return ""
        text = self.personalities[chosen]
        return text if isinstance(text, str) else ""

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        names = _NAMES.get()
        if names is not None and names.models is not None and model not in names.models:
            raise _err("unknown_model", f"unknown model {model!r}; valid: {_listing(names.models)}")
        return model

    @field_validator("servers")
    @classmethod
    def _known_servers(cls, servers: list[str]) -> list[str]:
        names = _NAMES.get()
        known = names.servers if names is not None else None
        errors: list[tuple[Loc, str]] = []
        for i, name in enumerate(servers):
            if known is not None and name not in known:
                errors.append(((i,), f"unknown server {name!r}; valid: {_listing(known)}"))
            elif name in servers[:i]:
                errors.append(((i,), f"server {name!r} is listed twice"))
        _fail(errors)
        return servers

    @field_validator("tools")
    @classmethod
    def _tools_of_own_servers(
        cls, tools: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        _own_servers(info, (((name,), name) for name in tools))
        return tools

    @field_validator("require_approval")
    @classmethod
    def _rules_of_own_servers(cls, policy: ApprovalPolicy, info: ValidationInfo) -> ApprovalPolicy:
        if isinstance(policy, ApprovalRules):
            rules = {("always", i): n for i, n in enumerate(policy.always)}
            rules |= {("never", i): n for i, n in enumerate(policy.never)}
            _own_servers(info, ((loc, n.partition(SEPARATOR)[0]) for loc, n in rules.items()))
        return policy


_BAD_OWNER = "invalid owner name: 1 to 128 characters, no spaces, not starting with 'role:'"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _owner_name(name: str) -> bool:
    return 0 < len(name) <= 128 and not re.search(r"\s", name) and not name.startswith("role:")


def _access_entry(entry: str) -> bool:
    role = entry.removeprefix("role:")
    return _owner_name(role) if entry.startswith("role:") else _owner_name(entry)


OwnerName = Annotated[str, _check(_owner_name, _BAD_OWNER)]
AccessEntry = Annotated[
    str, _check(_access_entry, "expected an owner name or 'role:<name>', got {value}")
]


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
    db: LocalPath | None = None
    """The thread database: a SQLite file (relative to the config file) or a
    ``postgresql://user@host:port/db`` URL (``${VAR}`` for its password)."""
    stateless_http: bool = False
    """HTTP: every request stands alone (no MCP session), so any replica behind a load
    balancer serves any request of a handshake-era client too; inline elicitation is then
    not used. 2026-07-28 clients are sessionless anyway."""
    lease_seconds: float = Field(15.0, ge=2, le=600)
    """PostgreSQL: how long a replica that stopped renewing its lease (it died) still
    counts as alive; then another replica settles and resumes its threads."""
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
    approver: Literal["model", "person"] = "model"
    """Who decides approvals for clients that render MCP Apps: ``model`` (the calling model
    calls ``approve_call``, as for every other client) or ``person`` (``approve_call`` is
    offered to the view only, where the person presses Approve or Deny). Clients without
    MCP Apps always get the ``model`` flow."""
    max_depth: int = Field(3, ge=1, le=10)
    """How deep agents may delegate to agents."""
    max_total_llm_requests: int = Field(100, ge=1)
    """LLM requests one top-level run may make, delegations included."""

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


_DB_URLS = ("postgresql://", "postgres://")


def _beside(path: str, info: ValidationInfo) -> str:
    """``path`` resolved against the config file's directory (if we know it)."""
    config_file = info.data.get("path")
    if config_file is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.abspath(Path(config_file).parent), path))


class Config(_Model):
    """The whole configuration file. ``path`` is where it was loaded from (not a file key)."""

    path: Path = Field(exclude=True)  # first, so later validators can resolve against it
    mcp_servers: dict[ServerName, DownstreamServerConfig] = Field(
        default_factory=dict, alias="mcpServers"
    )
    models: dict[str, ModelConfig] = {}
    agents: dict[AgentName, AgentConfig] = Field(default_factory=dict, validate_default=True)
    server: ServerSettings = Field(default_factory=ServerSettings)

    @model_validator(mode="wrap")
    @classmethod
    def _with_names(cls, data: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        def keys(table: object) -> frozenset[str] | None:
            return frozenset(map(str, table)) if isinstance(table, Mapping) else None

        raw = data if isinstance(data, Mapping) else {}
        token = _NAMES.set(_Names(keys(raw.get("models", {})), keys(raw.get("mcpServers", {}))))
        try:
            return handler(data)
        finally:
            _NAMES.reset(token)

    @field_validator("mcp_servers")
    @classmethod
    def _resolve_cwd(
        cls, servers: dict[str, DownstreamServerConfig], info: ValidationInfo
    ) -> dict[str, DownstreamServerConfig]:
        return {
            n: s.model_copy(update={"cwd": _beside(s.cwd, info)}) if s.cwd else s
            for n, s in servers.items()
        }

    @field_validator("agents")
    @classmethod
    def _some_agent(cls, agents: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        if not agents:
            raise _err("no_agents", _NO_AGENTS)
        problems: list[tuple[Loc, str]] = []
        for name, agent in agents.items():
            for i, other in enumerate(agent.agents):
                if other not in agents:
                    valid = _listing(agents)
                    problems.append(
                        ((name, "agents", i), f"unknown agent {other!r}; valid: {valid}")
                    )
                elif other == name:
                    problems.append(((name, "agents", i), "an agent cannot delegate to itself"))
        _fail(problems)
        return agents

    @field_validator("agents", mode="after")
    @classmethod
    def _read_text_files(
        cls, agents: dict[str, AgentConfig], info: ValidationInfo
    ) -> dict[str, AgentConfig]:
        """Load ``instructions_file`` and ``{ file = … }`` personalities into the config."""
        problems: list[tuple[Loc, str]] = []

        def read(loc: Loc, path: str) -> str:
            full = _beside(os.path.expanduser(path), info)
            try:
                with open(full, encoding="utf-8") as f:
                    return f.read()
            except OSError as exc:
                problems.append((loc, f"cannot read {full}: {exc.strerror or exc}"))
                return ""

        out: dict[str, AgentConfig] = {}
        for name, agent in agents.items():
            update: dict[str, Any] = {}
            if agent.instructions_file:
                update["instructions"] = read((name, "instructions_file"), agent.instructions_file)
            if any(isinstance(p, TextFile) for p in agent.personalities.values()):
                update["personalities"] = {
                    k: read((name, "personalities", k, "file"), v.file)
                    if isinstance(v, TextFile)
                    else v
                    for k, v in agent.personalities.items()
                }
            out[name] = agent.model_copy(update=update) if update else agent
        _fail(problems)
        return out

    @field_validator("agents", mode="after")
    @classmethod
    def _read_schema_files(
        cls, agents: dict[str, AgentConfig], info: ValidationInfo
    ) -> dict[str, AgentConfig]:
        """Load each ``output_schema_file`` (JSON) into ``output_schema``."""
        problems: list[tuple[Loc, str]] = []
        out = dict(agents)
        for name, agent in agents.items():
            if not agent.output_schema_file:
                continue
            full = _beside(os.path.expanduser(agent.output_schema_file), info)
            loc = (name, "output_schema_file")
            try:
                with open(full, encoding="utf-8") as f:
                    schema = json.load(f)
            except OSError as exc:
                problems.append((loc, f"cannot read {full}: {exc.strerror or exc}"))
                continue
            except ValueError as exc:
                problems.append((loc, f"{full} is not JSON: {exc}"))
                continue
            problem = schema_problem(schema)
            if problem is not None:
                problems.append((loc, f"{full}: {problem}"))
            else:
                out[name] = agent.model_copy(update={"output_schema": schema})
        _fail(problems)
        return out

    @field_validator("server")
    @classmethod
    def _resolve_db(cls, server: ServerSettings, info: ValidationInfo) -> ServerSettings:
        if not server.db or server.db.startswith(_DB_URLS):
            return server
        return server.model_copy(update={"db": _beside(server.db, info)})


# --- loading ----------------------------------------------------------------------------------


def config_from_dict(
    data: Mapping[str, Any], *, path: Path, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed config data; ``path`` names the file in messages and
    anchors relative paths. Raises :class:`ConfigError` listing every problem."""
    problems: list[tuple[Loc, str]] = []
    data = _with_default_keys(data)
    expanded = expand(data, (), os.environ if environ is None else environ, problems)
    env_locs = {loc for loc, _ in problems}  # a failed expansion explains later errors there
    if "path" in expanded:  # our field, filled in below; not a file key
        problems.append((("path",), f"unknown key; valid keys: {', '.join(keys(Config))}"))
        del expanded["path"]
    try:
        config = Config.model_validate({**expanded, "path": path})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc, owner = walk(error["loc"], Config)
            if loc not in env_locs:
                problems.append((loc, describe(error, owner)))
    if problems:
        lines = [f"{path}: {dotted(loc)}: {msg}" for loc, msg in sorted(problems, key=order)]
        # Raised outside the except block: the ValidationError (its text shows input values,
        # secrets included) must not ride along as __context__ into tracebacks.
        raise ConfigError("\n".join(lines))
    return config


def _with_default_keys(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` with ``api_key = "${ANTHROPIC_API_KEY:-}"`` on anthropic models that set none."""
    models = data.get("models")
    if not isinstance(models, Mapping):
        return data
    filled = {
        name: {**m, "api_key": ANTHROPIC_API_KEY}
        if isinstance(m, Mapping) and m.get("provider") == "anthropic" and "api_key" not in m
        else m
        for name, m in models.items()
    }
    return {**data, "models": filled}


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, parse (``.json`` as JSON, anything else as TOML) and validate a config file."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    data: Any
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{file}: line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: (top level): expected a JSON object")
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # Python 3.11 only has the position inside the message: "… (at line 3, column 9)".
            m = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", str(exc))
            where, what = (m[2], m[1]) if m else ("", str(exc))
            raise ConfigError(
                f"{file}: {where + ': ' if where else ''}TOML syntax error: {what}"
            ) from None
    return config_from_dict(data, path=file, environ=environ)
