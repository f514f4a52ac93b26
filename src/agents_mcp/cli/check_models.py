"""``agents-mcp check``'s rows for the models: one tiny request to each endpoint, the
models set aside for an unset environment variable, and empty keys an endpoint needs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import anyio

from agents_mcp.cli.environment import key_variables, needs_key
from agents_mcp.cli.report import Row
from agents_mcp.config import Config, ModelConfig
from agents_mcp.errors import LLMError


async def probe_model(
    name: str, cfg: ModelConfig, offline: bool, seconds: float, rows: dict[str, Row]
) -> None:
    """One tiny request through the model's provider (``llm.probe``): does it answer, call
    an offered tool, stream?"""
    item = f"model {name}"
    if cfg.provider == "demo":
        rows[name] = Row(True, item, "demo: built in, needs no endpoint")
        return
    where = f"{cfg.model} at {cfg.base_url}"
    if offline:
        rows[name] = Row(None, item, f"{where}: not contacted (--offline)")
        return
    from agents_mcp.llm import build_llm
    from agents_mcp.llm.failures import WrongEndpoint
    from agents_mcp.llm.probe import probe

    llm = build_llm(cfg, timeout=min(cfg.timeout, seconds), max_retries=0)
    try:
        with anyio.fail_after(seconds):
            found = await probe(llm)
        seen = ["calls tools" if found.tool_call else "answered without calling the offered tool"]
        if cfg.stream is False:
            seen.append("streaming off (stream = false)")
        elif found.tool_call is None:  # a tool call carries no text to see streaming in
            seen.append("streams" if found.fragments > 1 else "did not stream")
        if found.reasoning:
            seen.append("reports its reasoning")
        rows[name] = Row(True, item, f"{where} ({cfg.provider}): {', '.join(seen)}")
    except TimeoutError:
        rows[name] = Row(
            False, item, f"{where}: no answer within {seconds:g} s", "is the endpoint up?"
        )
    except WrongEndpoint as exc:  # its own hint is the generic form of the fix below
        rows[name] = Row(False, item, exc.problem, _model_fix(name, 404, cfg.provider))
    except LLMError as exc:
        rows[name] = Row(False, item, str(exc), _model_fix(name, exc.status, cfg.provider))
    finally:
        closer = getattr(llm, "aclose", None)
        if closer is not None:
            await closer()


def _model_fix(name: str, status: int | None, provider: str = "openai") -> str:
    key = f"models.{name}"
    if status in (401, 403):
        if provider == "anthropic":
            return f"check {key}.api_key (by default the environment variable ANTHROPIC_API_KEY)"
        return f"check {key}.api_key and the environment variable it names"
    if status == 404:
        return f"check {key}.base_url (usually ends in /v1) and {key}.model"
    if status == 429:
        return "rate limited or out of quota: check the provider account"
    if status is not None and status >= 500:
        return "the provider failed; try again later"
    if status is not None:
        return f"the endpoint refused the request: check {key}.model and {key}.extra"
    return f"is the endpoint running? check {key}.base_url"


def keyless_models(raw: Mapping[str, Any], config: Config | None) -> dict[str, str]:
    """Variables whose empty default leaves a model without the API key its endpoint
    needs: name → the warning, with what to do."""
    if config is None:
        return {}
    found: dict[str, str] = {}
    for variable, name in key_variables(raw).items():
        model = config.models.get(name)
        if (
            model is not None
            and model.api_key is None
            and needs_key(model.provider, model.base_url)
        ):
            found[variable] = (
                f"models.{name} then has no API key, which {model.base_url} needs:"
                f" export {variable}=… (a local endpoint needs none)"
            )
    return found


def unresolved_rows(config: Config) -> Iterator[Row]:
    """Models that name an unset variable: not contacted (the variable's row says why)."""
    for name, unset in config.unresolved_models.items():
        users = [a for a, cfg in config.agents.items() if cfg.model == name]
        detail = f"not contacted: needs {', '.join(unset)} (see above)"
        if users:
            detail += f", so agent{'s' if len(users) > 1 else ''} {', '.join(users)} cannot run"
        yield Row(None, f"model {name}", detail)
