"""``python -m benchmarks.providers``: S1 through agents-mcp on each provider, side by side.

The S1 conversation (K=5 ``echo`` calls, 0 ms latency, one at a time) through the
``agents-mcp (stdio)`` driver of ``python -m benchmarks``, once per ``provider``: the model
behind it is the wire-format fake of ``agents_mcp.testing`` for that API (Chat Completions,
Anthropic Messages, Responses), each in its own process and scripted by the conversation
the way ``benchmarks.fake_llm`` is. So the figures are the whole agents-mcp process tree per
conversation (client, server, downstream), with only the adapter changing between rows. The
fakes' own CPU is not in them (nor is it comparable: these fakes are Starlette apps, the
Chat Completions fake of the main benchmark is raw asyncio).

``python -m benchmarks.providers --serve anthropic`` is one such fake: it prints
``PORT <n>`` and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
from typing import Any

from agents_mcp.messages import LLMRequest, LLMResponse, ToolCall, Usage
from benchmarks import procstat
from benchmarks.harness import BENCH, ECHO_SERVER, ROOT, Sample, Worker, server_env

PROVIDERS = ("openai", "anthropic", "responses")
_DIRECTIVE = re.compile(r"\bK=(\d+)")
_USAGE = Usage(input_tokens=100, output_tokens=10)

_CONFIG = """\
[mcpServers.echo]
command = {python!r}
args = [{echo!r}]

[models.fake]
provider = {provider!r}
base_url = {base_url!r}
model = "fake"
api_key = "x"

[agents.bench]
description = "Benchmark agent: calls the echo tool as the fake model says."
instructions = "You are a benchmark agent."
model = "fake"
servers = ["echo"]
require_approval = "never"
max_iterations = 50
"""


class Scripted:
    """``benchmarks.fake_llm``'s script, on a parsed request: K rounds of one ``echo``
    call after the last user message, then ``done after <n> tool results``."""

    async def complete(self, request: LLMRequest, *, on_text: Any = None) -> LLMResponse:
        messages = list(request.messages)
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        said = messages[last_user].content or "" if last_user >= 0 else ""
        found = _DIRECTIVE.search(said)
        k = int(found[1]) if found else 0
        results = [m for m in messages[last_user + 1 :] if m.role == "tool"]
        tool = next((t.name for t in request.tools if t.name.endswith("echo")), None)
        if len(results) < k and tool is not None:
            n = len(results)
            call = ToolCall(
                id=f"call_{n}_0", name=tool, arguments=json.dumps({"text": f"ping-{n}-0"})
            )
            return LLMResponse(content=None, tool_calls=(call,), usage=_USAGE)
        pings = sum(1 for m in results if "ping" in (m.content or ""))
        return LLMResponse(content=f"done after {pings} tool results", usage=_USAGE)


async def serve_fake(provider: str) -> None:
    """Serve ``provider``'s fake until stdin closes."""
    from agents_mcp.testing.anthropic_server import FakeAnthropicServer
    from agents_mcp.testing.chat_server import FakeChatServer
    from agents_mcp.testing.responses_server import FakeResponsesServer

    kinds = {
        "openai": FakeChatServer,
        "anthropic": FakeAnthropicServer,
        "responses": FakeResponsesServer,
    }
    fake = kinds[provider](Scripted())
    async with fake.serve() as base_url:
        print(f"PORT {base_url.rsplit(':', 1)[1].split('/')[0]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


class ProviderFake:
    """One provider's fake, in its own process (the orchestrator reads its CPU apart)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.providers", "--serve", self.provider,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=server_env(), cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def cpu_ms(self) -> float:
        assert self.proc is not None
        return procstat.tree_cpu_ms(self.proc.pid)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 20)


async def main(warmup: int, rounds: int, batch: int, k: int = 5) -> int:
    work = BENCH / ".work" / "providers"
    work.mkdir(parents=True, exist_ok=True)
    fakes = {p: ProviderFake(p) for p in PROVIDERS}
    await asyncio.gather(*(f.start() for f in fakes.values()))
    workers: dict[str, Worker] = {}
    for p, fake in fakes.items():
        config = work / f"{p}.toml"
        config.write_text(
            _CONFIG.format(
                python=sys.executable, echo=ECHO_SERVER, provider=p, base_url=fake.base_url
            )
        )
        db = work / f"{p}.db"
        db.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "benchmarks.drivers.mcp_client", "--server", "agents-mcp"]
        argv += ["--base-url", fake.base_url, "--config", str(config), "--db", str(db)]
        workers[p] = Worker(p, p, argv, work / f"w-{p}.log", "serve --config")
    samples: dict[str, list[Sample]] = {p: [] for p in PROVIDERS}
    try:
        ready = await asyncio.gather(*(w.start() for w in workers.values()))
        failed = [w for w, ok in zip(workers.values(), ready, strict=True) if not ok]
        for w in failed:
            print(f"{w.key}: {w.failure}", file=sys.stderr)
        if failed:
            return 1
        warm = {"op": "batch", "n": warmup, "k": k, "latency_ms": 0, "tag": "warm"}
        for p, w in workers.items():
            await w.call(warm, fakes[p])
        for r in range(rounds):
            order = [*PROVIDERS[r % 3 :], *PROVIDERS[: r % 3]]  # rotate: load hits all alike
            for p in order:
                cmd = {"op": "batch", "n": batch, "k": k, "latency_ms": 0, "tag": f"p-{r}"}
                samples[p].append(await workers[p].call(cmd, fakes[p]))
    finally:
        await asyncio.gather(*(w.stop() for w in workers.values()))
        await asyncio.gather(*(f.stop() for f in fakes.values()))
    print(
        f"S1 through agents-mcp (stdio) per provider: K={k}, median of {rounds} batches of"
        f" {batch}, ms per conversation"
    )
    print("| provider | wall | CPU total | client / server / downstream |")
    print("|---|---:|---:|---|")
    errors = 0
    for p in PROVIDERS:
        s = samples[p]
        errors += sum(len(x.errors) for x in s)
        walls = [w for x in s for w in x.walls_ms]
        cpu = {
            role: statistics.median([x.cpu_per(role) for x in s])
            for role in ("total", "client", "server", "downstream")
        }
        roles = " / ".join(f"{cpu[r]:.1f}" for r in ("client", "server", "downstream"))
        wall = statistics.median(walls) if walls else float("nan")
        print(f"| {p} | {wall:.1f} | {cpu['total']:.1f} | {roles} |")
    for p in PROVIDERS:
        for x in samples[p]:
            for e in x.errors[:3]:
                print(f"{p}: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", choices=PROVIDERS, help="run one provider's fake")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_fake(args.serve))
    else:
        raise SystemExit(asyncio.run(main(args.warmup, args.rounds, args.batch)))
