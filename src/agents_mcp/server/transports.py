"""How the server is served: stdio (what desktop clients start) or streamable HTTP
(loopback by default; auth, Host/Origin checks, proxies, sessions)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import anyio
from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware

from agents_mcp.config import Config
from agents_mcp.errors import ConfigError
from agents_mcp.server.app import create_server
from agents_mcp.server.auth import OwnerVerifier, server_auth
from agents_mcp.server.challenge import Challenge
from agents_mcp.server.stateless import SessionDeclarations, StatelessCancels
from agents_mcp.server.stdin import closable_stdin
from agents_mcp.server.stopping import STOP_SIGNALS, release_stop_signals, stop_signals
from agents_mcp.server.ui.local import DashboardSpec
from agents_mcp.store import open_store, resolve_db

log = logging.getLogger("agents_mcp.server.transports")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def serve(
    config: Config,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    db_path: str | Path | None = None,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    on_listening: Callable[[], None] = lambda: None,
) -> bool:
    """Run the server until it is stopped; True when it was stopped by Ctrl-C (SIGINT),
    which asyncio may or may not also raise as ``KeyboardInterrupt``.

    ``allowed_hosts`` and ``allowed_origins`` (HTTP) add to ``[server]``'s lists: the
    ``Host`` names (a reverse proxy's, a LAN name) and browser origins accepted besides
    loopback and the server's own address. Without them, a proxied ``Host`` gets 421.
    ``on_listening`` is called once the HTTP port accepts connections (over stdio, at once).
    """
    if transport == "stdio":
        on_listening()
        return await serve_stdio(create_server(config, db_path=db_path, dashboard=_board(config)))
    with stop_signals() as stops:  # Ctrl-C from here on stops cleanly (see .stopping)
        auth = http_auth(config, host=host, port=port)
        with stops.preparing():
            # Open the database once before listening: a database that cannot be opened
            # is one clear error and exit code 1, not a server that fails in its lifespan.
            store = await open_store(
                resolve_db(config.server.db, db_path),
                lease_seconds=config.server.lease_seconds,
                sqlite_durability=config.server.sqlite_durability,
            )
            await store.close()
            app = http_app(
                create_server(
                    config,
                    db_path=db_path,
                    auth=auth,
                    callback_url=callback_url(config, host, port),
                ),
                host=host,
                allowed_hosts=[*config.server.allowed_hosts, *allowed_hosts],
                allowed_origins=[*config.server.allowed_origins, *allowed_origins],
                stateless=config.server.stateless_http,
            )
        if stops.received:  # stopped while preparing
            return stops.interrupted
        import uvicorn

        settings = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # its loggers propagate to ours: one format for every line
            timeout_graceful_shutdown=2,  # as fastmcp's run_http_async: open streams get 2 s
        )
        await stops.serve(settings, on_listening)
    return stops.interrupted


def _board(config: Config) -> DashboardSpec | None:
    """A stdio server's own dashboard (``[server] dashboard``): see ``ui.local``."""
    return DashboardSpec(config.server.dashboard_port) if config.server.dashboard else None


async def serve_stdio(mcp: FastMCP) -> bool:
    """Serve ``mcp`` over stdio (fastmcp's ``run_stdio_async``) until the client closes
    stdin, or until SIGINT or SIGTERM, which end stdin the same way: the server then shuts
    down as when the client leaves (requests in flight cancelled, the store closed,
    downstream servers stopped). A second signal cancels that shutdown. True after SIGINT.

    Over stdio, stdout is the protocol: no banner, and fastmcp logs warnings and worse
    (to stderr), or less when it was made quieter (``agents-mcp serve`` without
    ``--debug``). Elsewhere than POSIX, Ctrl-C is Python's ``KeyboardInterrupt``.
    """
    fastmcp_level = max(logging.WARNING, logging.getLogger("fastmcp").getEffectiveLevel())
    level = logging.getLevelName(fastmcp_level)
    if os.name != "posix":
        await _run_stdio(mcp, level)
        return False
    received: list[int] = []
    loop = asyncio.get_running_loop()
    with closable_stdin() as close_stdin, anyio.CancelScope() as scope:

        def stop(signum: int) -> None:
            received.append(signum)
            if len(received) > 1:
                scope.cancel()
            close_stdin()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        release_stop_signals()  # held since before the event loop started (cli.serving)
        try:
            await _run_stdio(mcp, level)
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
    return signal.SIGINT in received


async def _run_stdio(mcp: FastMCP, level: str) -> None:
    """fastmcp's stdio. A client that left while answers were still to be written (the
    SDK's writer then raises ``BrokenPipeError``) ends it as one that closed stdin does."""
    try:
        await mcp.run_stdio_async(show_banner=False, log_level=level)
    except* BrokenPipeError:
        log.debug("stdio: the client left before its answers were written")


def callback_url(config: Config, host: str, port: int) -> str:
    """Where a browser comes back to after a downstream sign-in: ``[server] public_url``
    (behind a proxy), else this server's own address."""
    public = config.server.public_url
    if public is None:
        if host in ("0.0.0.0", "::", ""):
            if any(c.auth == "oauth" for c in config.mcp_servers.values()):
                log.warning(
                    "set [server] public_url: sign-ins to downstream servers come back to"
                    " http://127.0.0.1:%d/oauth/callback, which only this machine reaches",
                    port,
                )
            host = "127.0.0.1"
        public = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    return public.rstrip("/") + "/oauth/callback"


def http_auth(config: Config, *, host: str, port: int) -> AuthProvider | None:
    """The auth of the HTTP server, after refusing setups that would expose it.

    Raises:
        ConfigError: when binding beyond loopback without tokens.
    """
    settings = config.server
    if not is_loopback(host) and not settings.authenticates:
        raise ConfigError(
            f"{config.path}: server.tokens: binding {host} (not loopback) needs tokens; add"
            ' [server.tokens.<owner>] with token = "${AGENTS_MCP_TOKEN}" (or [server.jwt]),'
            " or use --host 127.0.0.1"
        )
    if not settings.authenticates:
        log.warning(
            "HTTP without tokens: every local user and program on this machine is the same"
            " owner 'local', with the same threads and every agent; on a shared host add"
            " [server.tokens.<owner>] and set [server] require_tokens = true"
        )
    elif settings.jwt is not None and settings.jwt.resource_url is None and not is_loopback(host):
        log.warning(
            "[server.jwt] resource_url is not set: the metadata document names"
            " http://%s:%d/mcp; set resource_url to the URL clients use",
            host,
            port,
        )
    return server_auth(settings, host=host, port=port)


def http_app(
    mcp: FastMCP,
    *,
    host: str,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    stateless: bool = False,
) -> Starlette:
    """The ASGI app that ``serve`` runs: streamable HTTP at ``/mcp`` (both protocol eras),
    the auth routes, and Host/Origin checks against DNS rebinding: when bound to loopback,
    and wherever ``allowed_hosts`` (a reverse proxy's name) are given. ``stateless``: no
    MCP sessions (replicas behind a load balancer without session affinity), with the
    client's declaration and cancellations carried as ``stateless`` says. A refused
    request is told how to get in (``challenge``)."""
    hosts = [host, *allowed_hosts] if is_loopback(host) else list(allowed_hosts)
    static = isinstance(mcp.auth, OwnerVerifier)  # tokens, no [server.jwt]
    challenge = [Middleware(Challenge, mcp_path="/mcp", static=static)] if mcp.auth else []
    if stateless:  # what sessions would keep: the client's declaration, its cancellations
        mcp.add_middleware(StatelessCancels())
        challenge.append(Middleware(SessionDeclarations))
    return mcp.http_app(
        path="/mcp",
        middleware=challenge,
        stateless_http=stateless,
        host_origin_protection="auto",
        # None, not []: an empty list would still switch the checks on everywhere.
        allowed_hosts=hosts or None,
        allowed_origins=list(allowed_origins) or None,
    )
