"""Driver: pydantic-ai in-process (``Agent`` + ``MCPToolset``), run in its own venv.

Runs as its users do: ``agent.run`` on ``OpenAIChatModel`` with an ``OpenAIProvider``
pointed at the fake, and the same downstream ``echo`` server over stdio through an
``MCPToolset`` (pydantic-ai 2 builds it on a ``fastmcp.Client``; tool lists are cached by
default).
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.drivers import protocol


async def main(args: argparse.Namespace) -> None:
    from fastmcp.client import Client
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai import Agent  # type: ignore[import-not-found]  # only in its venv
    from pydantic_ai.mcp import MCPToolset  # type: ignore[import-not-found]  # only in its venv
    from pydantic_ai.models.openai import OpenAIChatModel  # type: ignore[import-not-found]  # only in its venv
    from pydantic_ai.providers.openai import OpenAIProvider  # type: ignore[import-not-found]  # only in its venv

    toolset = MCPToolset(Client(StdioTransport(args.python, [args.echo_server], keep_alive=False)))
    model = OpenAIChatModel("fake", provider=OpenAIProvider(base_url=args.base_url, api_key="x"))
    agent = Agent(model, instructions="You are a benchmark agent.", toolsets=[toolset])
    async with agent:

        class Driver:
            async def chat(self, message: str, thread_id: str | None = None) -> str:
                result = await agent.run(message)
                return str(result.output)

        await protocol.serve(Driver(), {"driver": "pydantic-ai"})


if __name__ == "__main__":
    protocol.claim_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--python", required=True, help="interpreter of the echo server")
    parser.add_argument("--echo-server", required=True)
    asyncio.run(main(parser.parse_args()))
