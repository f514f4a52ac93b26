"""The LLM as the loop sees it: one async ``complete()``, and the adapters behind it.

::

    LLM, TextCallback     the protocol every model implements (here)
    build_llm(cfg)        the adapter a ``[models.<name>]`` entry asks for (here)
    chat.OpenAIChatModel  provider "openai": Chat Completions, any compatible endpoint
    anthropic.AnthropicModel  provider "anthropic": the Messages API
    responses.ResponsesModel  provider "responses": the OpenAI Responses API, stateless
    endpoint, sse, retry  what the HTTP adapters share: one attempt, SSE, retry policy
    probe                 one tiny request that reports what a model can do

Provider modules load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from agents_mcp.messages import LLMRequest, LLMResponse

if TYPE_CHECKING:
    from agents_mcp.config import ModelConfig
    from agents_mcp.llm.anthropic import AnthropicModel
    from agents_mcp.llm.chat import OpenAIChatModel
    from agents_mcp.llm.responses import ResponsesModel

__all__ = [
    "LLM",
    "AnthropicModel",
    "OpenAIChatModel",
    "ResponsesModel",
    "TextCallback",
    "build_llm",
]
_ADAPTERS = {
    "AnthropicModel": "anthropic",
    "OpenAIChatModel": "chat",
    "ResponsesModel": "responses",
}


def __getattr__(name: str) -> Any:
    # The adapters load on first use: importing the package must not import them all.
    if name in _ADAPTERS:
        return getattr(importlib.import_module(f"agents_mcp.llm.{_ADAPTERS[name]}"), name)
    raise AttributeError(f"module 'agents_mcp.llm' has no attribute {name!r}")


TextCallback = Callable[[str], Awaitable[None]]
"""Called with each streamed text fragment as it arrives."""


class LLM(Protocol):
    """Anything that can answer an :class:`LLMRequest`.

    ``on_text``: who shows the answer as it is written. ``None`` means nobody reads partial
    text, and adapters with ``stream = "auto"`` then ask for the whole answer at once.
    """

    async def complete(
        self, request: LLMRequest, *, on_text: TextCallback | None = None
    ) -> LLMResponse: ...


def build_llm(
    cfg: ModelConfig, *, timeout: float | None = None, max_retries: int | None = None
) -> LLM:
    """The model a ``[models.<name>]`` entry describes (``timeout``/``max_retries`` override)."""
    if cfg.provider == "demo":
        from agents_mcp.llm.demo import DemoLLM

        return DemoLLM()
    from agents_mcp.llm.endpoint import HTTPModel

    cls: type[HTTPModel]
    if cfg.provider == "anthropic":
        from agents_mcp.llm.anthropic import AnthropicModel

        cls = AnthropicModel
    elif cfg.provider == "responses":
        from agents_mcp.llm.responses import ResponsesModel

        cls = ResponsesModel
    else:
        from agents_mcp.llm.chat import OpenAIChatModel

        cls = OpenAIChatModel
    assert cfg.base_url is not None and cfg.model is not None  # enforced by the config
    model = cls(
        base_url=str(cfg.base_url),
        model=cfg.model,
        api_key=cfg.api_key.get_secret_value() if cfg.api_key is not None else None,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        timeout=cfg.timeout if timeout is None else timeout,
        extra=cfg.extra,
        stream=cfg.stream,
    )
    if max_retries is not None:
        model.retry.max_retries = max_retries
    return model
