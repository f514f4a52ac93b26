"""``[mcpServers.<name>]``: downstream MCP servers, in Claude Desktop's entry shape."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
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
    auth: Literal["oauth", "client_credentials"] | None = None
    """HTTP: ``oauth``: each owner signs in (authorization code with PKCE), and each
    owner's calls carry their own token; ``client_credentials``: one token of agents-mcp's
    own (a client secret or a private-key JWT), for service-to-service servers."""
    scopes: list[str] = []
    """Scopes to ask for besides those the server names (``oauth``), or the scopes of
    the client-credentials token."""
    client_id: str | None = Field(None, min_length=1)
    """A client registered with the authorization server beforehand (else ``oauth``
    registers one itself, or uses ``client_metadata_url``)."""
    client_secret: SecretStr | None = None
    client_metadata_url: HttpUrl | None = None
    """``oauth``: an https URL of a Client ID Metadata Document to use as the client id
    where the authorization server supports it."""
    issuer: HttpUrl | None = None
    """``client_credentials``: the authorization server the credentials belong to; they
    are sent to no other."""
    private_key: SecretStr | None = None
    """``client_credentials``: a PEM private key: authenticate with a signed JWT
    (``private_key_jwt``) instead of ``client_secret``."""
    signing_algorithm: Literal["ES256", "ES384", "RS256", "RS384", "RS512", "PS256"] = "ES256"

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
        errors += self._auth_errors() if not stdio else self._no_auth()
        _fail(errors)
        return self

    def _no_auth(self) -> list[tuple[Loc, str]]:
        keys = ("auth", "scopes", "client_id", "client_secret", "client_metadata_url", "issuer")
        return [
            ((key,), "only valid with url (HTTP), not command")
            for key in (*keys, "private_key")
            if key in self.model_fields_set and getattr(self, key)
        ]

    def _auth_errors(self) -> list[tuple[Loc, str]]:
        errors: list[tuple[Loc, str]] = []
        if self.auth is None:
            for key in ("scopes", "client_id", "client_secret", "client_metadata_url", "issuer"):
                if getattr(self, key):
                    errors.append(((key,), 'needs auth = "oauth" or auth = "client_credentials"'))
        elif self.auth == "client_credentials":
            if self.client_id is None:
                errors.append((("client_id",), 'required with auth = "client_credentials"'))
            if (self.client_secret is None) == (self.private_key is None):
                what = "both" if self.client_secret else "neither"
                errors.append(((), f"has {what} of client_secret and private_key; set one"))
            if self.issuer is None:
                errors.append(
                    (
                        ("issuer",),
                        'required with auth = "client_credentials": the authorization'
                        " server's issuer URL, the only place the credentials are sent",
                    )
                )
            if self.client_metadata_url is not None:
                errors.append((("client_metadata_url",), 'only valid with auth = "oauth"'))
        else:
            if self.private_key is not None:
                errors.append((("private_key",), 'only valid with auth = "client_credentials"'))
            if self.client_secret is not None and self.client_id is None:
                errors.append((("client_secret",), "needs client_id"))
        if self.auth is not None and any(k.lower() == "authorization" for k in self.headers):
            errors.append(
                (("headers",), f"an Authorization header contradicts auth = {self.auth!r}")
            )
        url = self.client_metadata_url
        if url is not None and (not url.startswith("https://") or urlsplit(url).path in ("", "/")):
            errors.append(
                (("client_metadata_url",), "expected an https:// URL with a path (a document)")
            )
        return errors


Provider = Literal["openai", "anthropic", "responses", "demo"]
