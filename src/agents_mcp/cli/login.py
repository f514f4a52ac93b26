"""``agents-mcp login SERVER`` and ``agents-mcp logout SERVER``: sign in to a downstream
server from the terminal (``auth = "oauth"``), or forget the sign-in.

``login`` asks the server, as the owner (``local`` unless ``--owner``), for what it asks
a run: the authorization server's page, with PKCE and a redirect to the loopback
listener (``http://127.0.0.1:<oauth_callback_port>/oauth/callback``); it opens the
browser there and waits until the token is in the database (whichever agents-mcp got
the browser back: a running stdio server listening on the same port finishes it just
as well). Runs that waited for this sign-in are marked to go on: the agents-mcp serving
them resumes them (at once, or when it next starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import anyio
from cyclopts import Parameter

from agents_mcp.cli import collector
from agents_mcp.cli.app import ConfigOption, DbOption, app, command_console
from agents_mcp.cli.invocation import Invocation
from agents_mcp.errors import ConfigError, RunError

if TYPE_CHECKING:
    from agents_mcp.cli.terminal import Console
    from agents_mcp.config import Config, DownstreamServerConfig
    from agents_mcp.downstream.signin import Accounts
    from agents_mcp.store.tokens import StoredToken, TokenStore

OwnerOption = Annotated[
    str, Parameter(metavar="OWNER", help="whose sign-in (default: local, as over stdio)")
]
POLL = 0.5


@app.command(sort_key=9, usage="Usage: agents-mcp login SERVER [OPTIONS]", help_epilogue="")
def login(
    server: Annotated[str, Parameter(metavar="SERVER", help='a server with auth = "oauth"')],
    /,
    *,
    owner: OwnerOption = "local",
    browser: Annotated[
        bool, Parameter(help="open the browser (--no-browser: print only)", negative="--no-browser")
    ] = True,
    timeout: Annotated[float, Parameter(metavar="S", help="how long to wait (default: 300)")] = 300,
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Sign in to a downstream server that signs each person in.

    Prints the sign-in page's address (and opens it), then waits for the browser to come
    back. Exit code 1 when it did not within --timeout.
    """
    invocation = Invocation(config, db)
    return collector.run(
        lambda: run_login(invocation, server, owner, browser, timeout, command_console())
    )


@app.command(sort_key=10, usage="Usage: agents-mcp logout SERVER [OPTIONS]", help_epilogue="")
def logout(
    server: Annotated[str, Parameter(metavar="SERVER", help='a server with auth = "oauth"')],
    /,
    *,
    owner: OwnerOption = "local",
    config: ConfigOption = None,
    db: DbOption = None,
) -> int:
    """Forget a sign-in to a downstream server (its tokens leave the database)."""
    invocation = Invocation(config, db)
    return collector.run(lambda: run_logout(invocation, server, owner, command_console()))


def _loaded(invocation: Invocation, server: str) -> Config:
    """The config, once ``server`` is one that signs people in."""
    config = invocation.load()
    found = config.mcp_servers.get(server)
    if found is None:
        valid = ", ".join(n for n, c in config.mcp_servers.items() if c.auth == "oauth")
        raise ConfigError(
            f"no server {server!r} in {invocation.config_path()}; signing in: {valid or 'none'}"
        )
    if found.auth != "oauth":
        raise ConfigError(f'server {server!r} does not sign people in (it has no auth = "oauth")')
    return config


async def run_login(
    invocation: Invocation, server: str, owner: str, browser: bool, seconds: float, console: Console
) -> int:
    from agents_mcp.threads.runtime import open_runtime

    config = _loaded(invocation, server)
    async with open_runtime(config, db_path=invocation.db, recover=False) as runtime:
        accounts = runtime.accounts
        assert accounts is not None
        accounts.on_signed_in = None  # runs are resumed where they are served, not here
        before = await accounts.tokens.token(owner, server)
        url = await _sign_in_page(accounts, config.mcp_servers[server], server, owner)
        if url is None:
            console.status(
                f"Already signed in to {server} (owner {owner}); logout first to sign in again."
            )
            return 0
        console.status(f"Sign in to {server} (owner {owner}) in your browser:")
        console.line(url)
        if browser:
            import webbrowser  # only here: every command's start-up imports this module

            webbrowser.open(url)
        found = await _new_token(accounts.tokens, owner, server, before, seconds)
        if found is None:
            console.status(f"agents-mcp: no sign-in to {server} within {seconds:g} s")
            return 1
        resumed = await accounts.tokens.approve_waiting(owner, server, "signed in (login)")
    console.status(f"Signed in to {server} (owner {owner}, issuer {found.issuer or 'unknown'}).")
    if resumed:
        console.status(f"{resumed} waiting call(s) go on where their threads are served.")
    return 0


async def _sign_in_page(
    accounts: Accounts, config: DownstreamServerConfig, server: str, owner: str
) -> str | None:
    """What the server asks of ``owner``: the sign-in page (None: signed in already)."""
    from agents_mcp.downstream.oauth import NotAuthorized, acting_for
    from agents_mcp.downstream.servers import DownstreamServer

    target = DownstreamServer(server, config, accounts=accounts)
    try:
        with acting_for(owner), anyio.fail_after(config.init_timeout + 30):
            await target.tools()
    except NotAuthorized as exc:
        if exc.sign_in is None:
            raise RunError(f"cannot sign in to {server}: {exc.reason}") from None
        return exc.sign_in.url
    finally:
        await target.aclose()
    return None


async def _new_token(
    tokens: TokenStore, owner: str, server: str, before: StoredToken | None, seconds: float
) -> StoredToken | None:
    """The owner's token once it is newer than ``before`` (None: not within ``seconds``)."""
    with anyio.move_on_after(seconds):
        while True:
            found = await tokens.token(owner, server)
            if found is not None and (before is None or found.updated_at != before.updated_at):
                return found
            await anyio.sleep(POLL)  # the browser may come back to another process
    return None


async def run_logout(invocation: Invocation, server: str, owner: str, console: Console) -> int:
    from agents_mcp.store import open_store
    from agents_mcp.store.secrets import keys_for
    from agents_mcp.store.tokens import TokenStore

    config = _loaded(invocation, server)
    store = await open_store(invocation.db_path(config), lease_seconds=config.server.lease_seconds)
    try:
        gone = await TokenStore(store.db, keys_for(store.location)).delete_tokens(owner, server)
    finally:
        await store.close()
    if gone:
        console.status(f"Signed out of {server} (owner {owner}): its tokens are deleted.")
    else:
        console.status(f"Not signed in to {server} (owner {owner}).")
    return 0
