"""``[agents.<name>]``: the agents, their approval rules and parameters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agents_mcp.config.base import (
    SEPARATOR,
    AccessEntry,
    ApprovalMode,
    RuleName,
    _err,
    _fail,
    _listing,
    _Model,
)
from agents_mcp.config.errors import Loc
from agents_mcp.structured import schema_problem


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
    disabled_tools: dict[str, list[str]] = {}
    """Tools of a server the agent never sees, even where ``tools`` allows them all."""
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

    @field_validator("tools", "disabled_tools")
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
