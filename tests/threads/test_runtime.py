"""``open_threads``: a configuration assembled into agents."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from agents_mcp.config import config_from_dict
from agents_mcp.store import LOCAL_OWNER
from agents_mcp.threads.runtime import open_threads

pytestmark = pytest.mark.anyio


async def test_a_model_with_an_unset_variable_fails_only_the_runs_that_use_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_from_dict(
        {
            "models": {
                "demo": {"provider": "demo"},
                "hosted": {"base_url": "${HOSTED_URL}", "api_key": "${HOSTED_KEY}", "model": "m"},
            },
            "agents": {
                "demo": {"description": "d", "model": "demo"},
                "hosted": {"description": "h", "model": "hosted"},
            },
        },
        path=tmp_path / "agents.toml",
        environ={},
    )
    with caplog.at_level(logging.WARNING, logger="agents_mcp.threads.runtime"):
        async with open_threads(config, db_path=tmp_path / "threads.db") as threads:
            with anyio.fail_after(30):
                fine = await threads.chat(owner=LOCAL_OWNER, agent="demo", message="hi")
                failed = await threads.chat(owner=LOCAL_OWNER, agent="hosted", message="hi")
    assert fine.thread.status == "completed"
    assert (failed.thread.status, failed.thread.error_type) == ("failed", "llm_error")
    message = failed.thread.error_message or ""
    assert message.startswith(
        "model 'hosted' cannot be used: its config names the environment variables"
        " HOSTED_URL, HOSTED_KEY, not set where agents-mcp started; set them"
    )
    assert str(tmp_path) not in message  # a client is never shown where the config is
    (logged,) = [r.getMessage() for r in caplog.records]
    assert logged.endswith("(agents that use it: hosted)")
