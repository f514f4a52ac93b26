"""Driver: openai-agents in-process (``Agent`` + ``MCPServerStdio``), run in its own venv.

Runs as its users do: ``Runner.run`` on a Chat Completions model (the fake speaks Chat
Completions, not the Responses API), the same downstream ``echo`` server over stdio with
``cache_tools_list=True`` (the documented setting for a static tool list), tracing off
(its exporter would otherwise post every run to api.openai.com).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from benchmarks.drivers import protocol


async def main(args: argparse.Namespace) -> None:
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled  # type: ignore[import-not-found]  # only in its venv
    from agents.mcp import MCPServerStdio  # type: ignore[import-not-found]  # only in its venv
    from openai import AsyncOpenAI  # type: ignore[import-not-found]  # only in its venv

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=args.base_url, api_key="x", max_retries=0)
    server = MCPServerStdio(
        params={"command": args.python, "args": [args.echo_server]},
        cache_tools_list=True,
        client_session_timeout_seconds=60,
    )
    async with server:
        agent = Agent(
            name="bench",
            instructions="You are a benchmark agent.",
            model=OpenAIChatCompletionsModel(model="fake", openai_client=client),
            mcp_servers=[server],
        )

        class Driver:
            async def chat(self, message: str, thread_id: str | None = None) -> str:
                result = await Runner.run(agent, message, max_turns=50)
                return str(result.final_output)

        await protocol.serve(Driver(), {"driver": "openai-agents"})


if __name__ == "__main__":
    protocol.claim_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--python", required=True, help="interpreter of the echo server")
    parser.add_argument("--echo-server", required=True)
    asyncio.run(main(parser.parse_args()))
