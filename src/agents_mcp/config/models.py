"""``[models.<name>]``: LLM endpoints and the API each speaks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    model_validator,
)

from agents_mcp.config.base import HttpUrl, _err, _fail, _Model
from agents_mcp.config.servers import Provider
from agents_mcp.config.usage import Price

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
    price: Price | None = None
    """USD per million tokens; without it, usage is counted in tokens only."""

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
