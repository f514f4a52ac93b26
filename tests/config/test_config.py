"""The config file: models, ``${VAR}`` expansion, cross references and error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from agents_mcp.config import (
    ApprovalPolicy,
    ApprovalRules,
    Config,
    approval_required,
    config_from_dict,
    load_config,
)
from agents_mcp.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"
ENV = {"OPENAI_API_KEY": "sk-test-secret", "SEARCH_TOKEN": "tok-search", "AGENTS_MCP_TOKEN": "t0k"}
FILE = Path("/etc/agents-mcp/agents.toml")


def valid() -> dict[str, Any]:
    """A small valid config, for tests to break one key at a time."""
    return {
        "mcpServers": {
            "fs": {"command": "fs-server"},
            "time": {"url": "http://127.0.0.1:8000/mcp"},
        },
        "models": {
            "default": {"base_url": "http://127.0.0.1:11434/v1", "model": "llama3"},
            "fast": {"provider": "demo"},
        },
        "agents": {
            "helper": {"description": "Helps.", "model": "default", "servers": ["fs", "time"]}
        },
    }


def load(data: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    return config_from_dict(data, path=FILE, environ=environ or {})


def errors(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    """The ConfigError message ``data`` produces, as if read from ``agents.toml``."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, path=Path("agents.toml"), environ=environ or {})
    return str(info.value)


def dump(config: Config) -> dict[str, Any]:
    """The config as JSON data, with the fixture directory written as ``<configs>``."""
    text = json.dumps(config.model_dump(mode="json", by_alias=True))
    data: dict[str, Any] = json.loads(text.replace(str(CONFIGS), "<configs>"))
    return data


# --- valid files ------------------------------------------------------------------------------


def test_full_toml_parses_to_expected_config() -> None:
    config = load_config(CONFIGS / "full.toml", environ=ENV)
    assert config.path == CONFIGS / "full.toml"
    assert dump(config) == snapshot(
        {
            "mcpServers": {
                "fs": {
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"],
                    "env": {"LOG_LEVEL": "warn"},
                    "cwd": "<configs>/workdir",
                    "url": None,
                    "headers": {},
                    "type": None,
                    "transport": None,
                    "timeout": 20.0,
                    "init_timeout": 30.0,
                    "protocol": "legacy",
                    "kind": "mcp",
                    "required": False,
                    "max_result_bytes": 16777216,
                    "auth": None,
                    "scopes": [],
                    "client_id": None,
                    "client_secret": None,
                    "client_metadata_url": None,
                    "issuer": None,
                    "private_key": None,
                    "signing_algorithm": "ES256",
                },
                "search": {
                    "command": None,
                    "args": [],
                    "env": {},
                    "cwd": None,
                    "url": "https://search.example.com/mcp",
                    "headers": {"Authorization": "Bearer tok-search"},
                    "type": "http",
                    "transport": None,
                    "timeout": 60.0,
                    "init_timeout": 5.0,
                    "protocol": "auto",
                    "kind": "mcp",
                    "required": False,
                    "max_result_bytes": 16777216,
                    "auth": None,
                    "scopes": [],
                    "client_id": None,
                    "client_secret": None,
                    "client_metadata_url": None,
                    "issuer": None,
                    "private_key": None,
                    "signing_algorithm": "ES256",
                },
            },
            "models": {
                "default": {
                    "provider": "openai",
                    "base_url": "https://api.openai.com/v1",
                    "api_key": "**********",
                    "model": "gpt-4.1-mini",
                    "temperature": 0.2,
                    "max_tokens": 2000,
                    "timeout": 120.0,
                    "stream": "auto",
                    "context_tokens": 128000,
                    "extra": {"reasoning_effort": "low", "top_p": 0.9},
                    "price": {
                        "input": 0.4,
                        "output": 1.6,
                        "cached_input": 0.1,
                        "cache_write": None,
                    },
                },
                "offline": {
                    "provider": "demo",
                    "base_url": None,
                    "api_key": None,
                    "model": None,
                    "temperature": None,
                    "max_tokens": None,
                    "timeout": 120.0,
                    "stream": "auto",
                    "context_tokens": 128000,
                    "extra": {},
                    "price": None,
                },
            },
            "model_aliases": {},
            "agents": {
                "researcher": {
                    "description": "Searches the web and reads local files to answer research questions.",
                    "instructions": "You are a careful researcher. Cite your sources.\n",
                    "instructions_file": None,
                    "model": "default",
                    "servers": ["fs", "search"],
                    "tools": {"fs": ["read_file", "list_directory"]},
                    "disabled_tools": {},
                    "require_approval": {
                        "always": ["search__fetch"],
                        "never": ["fs__*"],
                        "default": "read_only",
                    },
                    "max_iterations": 20,
                    "personalities": {},
                    "default_personality": None,
                    "params": {
                        "temperature": None,
                        "max_tokens": None,
                        "top_p": None,
                        "stop": None,
                        "seed": None,
                        "response_format": None,
                        "tool_choice": None,
                        "extra": {},
                    },
                    "on_cancel": "detach",
                    "agents": [],
                    "access": None,
                    "output_schema": None,
                    "output_schema_file": None,
                    "budget": {
                        "daily_tokens": None,
                        "daily_cost": 20.0,
                        "max_tokens": None,
                        "max_cost": 0.5,
                    },
                },
                "echo": {
                    "description": "Answers from a scripted demo model.",
                    "instructions": "",
                    "instructions_file": None,
                    "model": "offline",
                    "servers": [],
                    "tools": {},
                    "disabled_tools": {},
                    "require_approval": "never",
                    "max_iterations": 12,
                    "personalities": {},
                    "default_personality": None,
                    "params": {
                        "temperature": None,
                        "max_tokens": None,
                        "top_p": None,
                        "stop": None,
                        "seed": None,
                        "response_format": None,
                        "tool_choice": None,
                        "extra": {},
                    },
                    "on_cancel": "detach",
                    "agents": [],
                    "access": None,
                    "output_schema": None,
                    "output_schema_file": None,
                    "budget": {
                        "daily_tokens": None,
                        "daily_cost": None,
                        "max_tokens": None,
                        "max_cost": None,
                    },
                },
            },
            "server": {
                "auth_tokens": ["**********"],
                "tokens": {},
                "jwt": None,
                "require_tokens": False,
                "allowed_hosts": [],
                "allowed_origins": [],
                "db": "<configs>/state/agents.db",
                "sqlite_durability": "full",
                "stateless_http": False,
                "lease_seconds": 15.0,
                "retain_days": None,
                "name": "research-agents",
                "wait_seconds": 45.0,
                "progress_interval": 1.0,
                "reply_budget": 20000,
                "tool_result_budget": 50000,
                "max_stored_result": 1000000,
                "approval_prompt": "structured",
                "elicitation_timeout": 20.0,
                "task_ttl_seconds": 86400,
                "task_poll_interval": 1.0,
                "question_timeout": 3600.0,
                "approver": "model",
                "public_url": None,
                "oauth_callback_port": 33418,
                "max_depth": 3,
                "max_total_llm_requests": 100,
                "budgets": {
                    "owner": {"daily_tokens": 2000000, "daily_cost": None},
                    "owners": {"alice": {"daily_tokens": None, "daily_cost": 10.0}},
                },
                "telemetry": {"enabled": None, "capture_content": True},
                "dashboard": True,
                "dashboard_port": 0,
                "agents_from": [],
                "agents_from_approval": "always",
            },
        }
    )


def test_toml_and_json_give_equal_configs() -> None:
    from_toml = load_config(CONFIGS / "full.toml", environ=ENV)
    from_json = load_config(CONFIGS / "full.json", environ=ENV)
    assert from_toml.model_copy(update={"path": from_json.path}) == from_json


def test_load_accepts_str_path_and_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = load_config(str(CONFIGS / "full.toml"))
    assert config.models["default"].api_key is not None
    assert config.models["default"].api_key.get_secret_value() == "sk-test-secret"


def test_claude_desktop_paste() -> None:
    pasted = json.loads("""{
      "mcpServers": {
        "filesystem": {
          "command": "npx",
          "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
          "env": {"NODE_ENV": "production"}
        },
        "linear": {
          "url": "https://mcp.linear.app/mcp",
          "headers": {"Authorization": "Bearer lin_api_123"}
        },
        "code-stdio": {"type": "stdio", "command": "uvx", "args": ["mcp-server-git"]},
        "code-http": {"type": "http", "url": "https://example.com/mcp"},
        "cursor-http": {"transport": "streamable-http", "url": "https://example.com/mcp"}
      }
    }""")
    data = valid()
    data["mcpServers"] = pasted["mcpServers"]
    data["agents"]["helper"]["servers"] = ["filesystem", "linear"]
    servers = load(data).mcp_servers
    assert {name: s.connection for name, s in servers.items()} == snapshot(
        {
            "filesystem": "stdio",
            "linear": "http",
            "code-stdio": "stdio",
            "code-http": "http",
            "cursor-http": "http",
        }
    )
    linear = servers["linear"]
    assert linear.headers == {"Authorization": "Bearer lin_api_123"}
    assert (linear.timeout, linear.init_timeout, linear.protocol) == (60.0, 30.0, "legacy")
    assert servers["filesystem"].env == {"NODE_ENV": "production"}


def test_provider_defaults() -> None:
    data = valid()
    data["models"] = {
        "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        "keyed": {"provider": "anthropic", "model": "claude", "api_key": "${MY_KEY}"},
        "resp": {"provider": "responses", "base_url": "https://api.openai.com/v1", "model": "o4"},
        "local": {"base_url": "http://127.0.0.1:11434/v1", "model": "llama3", "stream": False},
    }
    data["agents"]["helper"]["model"] = "claude"
    models = load(data, {"ANTHROPIC_API_KEY": "sk-ant-1", "MY_KEY": "sk-ant-2"}).models
    shown = {
        name: (m.base_url, m.api_key and m.api_key.get_secret_value(), m.stream, m.context_tokens)
        for name, m in models.items()
    }
    assert shown == snapshot(
        {
            "claude": ("https://api.anthropic.com/v1", "sk-ant-1", "auto", 200000),
            "keyed": ("https://api.anthropic.com/v1", "sk-ant-2", "auto", 200000),
            "resp": ("https://api.openai.com/v1", None, "auto", 128000),
            "local": ("http://127.0.0.1:11434/v1", None, False, 128000),
        }
    )
    unset = load(data, {"MY_KEY": "sk-ant-2"}).models["claude"]
    assert unset.api_key is None  # ANTHROPIC_API_KEY not set: no key, the API says so


def test_provider_requirements() -> None:
    data = valid()
    data["models"] = {"claude": {"provider": "anthropic"}, "resp": {"provider": "responses"}}
    data["agents"]["helper"]["model"] = "claude"
    assert errors(data) == snapshot("""\
agents.toml: models.claude.model: required for provider 'anthropic'
agents.toml: models.resp.base_url: required for provider 'responses'
agents.toml: models.resp.model: required for provider 'responses'\
""")


def test_defaults() -> None:
    config = load(valid())
    agent = config.agents["helper"]
    assert (agent.instructions, agent.tools, agent.require_approval, agent.max_iterations) == (
        "",
        {},
        "always",
        12,
    )
    model = config.models["default"]
    assert (model.provider, model.api_key, model.temperature, model.max_tokens) == (
        "openai",
        None,
        None,
        None,
    )
    assert (model.timeout, model.extra) == (120.0, {})
    assert config.server.model_dump() == snapshot(
        {
            "auth_tokens": [],
            "tokens": {},
            "jwt": None,
            "require_tokens": False,
            "allowed_hosts": [],
            "allowed_origins": [],
            "db": None,
            "sqlite_durability": "full",
            "stateless_http": False,
            "lease_seconds": 15.0,
            "retain_days": None,
            "name": "agents-mcp",
            "wait_seconds": 45.0,
            "progress_interval": 1.0,
            "reply_budget": 20000,
            "tool_result_budget": 50000,
            "max_stored_result": 1000000,
            "approval_prompt": "structured",
            "elicitation_timeout": 20.0,
            "task_ttl_seconds": 86400,
            "task_poll_interval": 1.0,
            "question_timeout": 3600.0,
            "approver": "model",
            "public_url": None,
            "oauth_callback_port": 33418,
            "max_depth": 3,
            "max_total_llm_requests": 100,
            "budgets": {"owner": {"daily_tokens": None, "daily_cost": None}, "owners": {}},
            "telemetry": {"enabled": None, "capture_content": False},
            "dashboard": True,
            "dashboard_port": 0,
            "agents_from": [],
            "agents_from_approval": "always",
        }
    )


def test_relative_paths_resolve_against_config_dir_and_home_expands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    data = valid()
    data["mcpServers"]["fs"]["cwd"] = "../srv"
    data["mcpServers"]["git"] = {"command": "git-mcp", "cwd": "~/src"}
    data["server"] = {"db": "state/agents.db"}
    config = load(data)
    assert config.mcp_servers["fs"].cwd == "/etc/srv"
    assert config.mcp_servers["git"].cwd == "/home/me/src"
    assert config.server.db == "/etc/agents-mcp/state/agents.db"
    data["server"] = {"db": "~/agents.db"}
    assert load(data).server.db == "/home/me/agents.db"


def test_the_database_is_a_path_a_sqlite_url_or_a_postgresql_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    accepted = {
        "state/agents.db": "/etc/agents-mcp/state/agents.db",
        "./odd:name.db": "/etc/agents-mcp/odd:name.db",
        "sqlite:state/agents.db": "/etc/agents-mcp/state/agents.db",
        "sqlite:///var/lib/agents.db": "/var/lib/agents.db",
        "sqlite:~/agents.db": "/home/me/agents.db",
        "postgres://a@db.internal/agents": "postgres://a@db.internal/agents",
        "postgresql://a:pw@db.internal:5433/agents": "postgresql://a:pw@db.internal:5433/agents",
    }
    for given, resolved in accepted.items():
        assert load({**valid(), "server": {"db": given}}).server.db == resolved, given
    refused = ["mysql://x@y/z", "postgresql+asyncpg://a@h/d", "file:///x.db", "sqlite://h/x.db"]
    assert [errors({**valid(), "server": {"db": db}}) for db in refused] == snapshot(
        [
            "agents.toml: server.db: unsupported database 'mysql://'; expected a SQLite file path, sqlite:PATH (sqlite:///abs/path or sqlite:relative/path), or a postgresql:// (postgres://) URL",
            "agents.toml: server.db: unsupported database 'postgresql+asyncpg://'; expected a SQLite file path, sqlite:PATH (sqlite:///abs/path or sqlite:relative/path), or a postgresql:// (postgres://) URL",
            "agents.toml: server.db: unsupported database 'file://'; expected a SQLite file path, sqlite:PATH (sqlite:///abs/path or sqlite:relative/path), or a postgresql:// (postgres://) URL",
            "agents.toml: server.db: 'sqlite://h/x.db': a SQLite file has no host; write sqlite:///absolute/path or sqlite:relative/path",
        ]
    )


def test_a_lease_shorter_than_a_loaded_host_can_renew_is_refused() -> None:
    assert load({**valid(), "server": {"lease_seconds": 10}}).server.lease_seconds == 10
    assert errors({**valid(), "server": {"lease_seconds": 3}}) == snapshot(
        "agents.toml: server.lease_seconds: must be at least 10: a replica renews its lease every third of it, and a renewal can wait seconds on a loaded host or a busy database (its lock timeout is 5 s); a shorter lease expires under a live replica, and the others then stop and take over its runs"
    )


def test_retention_is_off_by_default_and_counts_days() -> None:
    assert load(valid()).server.retain_days is None
    assert load({**valid(), "server": {"retain_days": 0.5}}).server.retain_days == 0.5
    assert errors({**valid(), "server": {"retain_days": 0}}) == snapshot(
        "agents.toml: server.retain_days: must be greater than 0"
    )


def test_demo_model_needs_nothing_but_openai_needs_url_and_model() -> None:
    data = valid()
    data["models"] = {"default": {"provider": "demo"}, "fast": {}}
    assert errors(data) == snapshot("""\
agents.toml: models.fast.base_url: required for provider 'openai' (the default)
agents.toml: models.fast.model: required for provider 'openai' (the default)\
""")


@pytest.mark.parametrize(("given", "used"), [(0, 1), (-5, 1), (1, 1), (50, 50), (99, 50)])
def test_max_iterations_is_clamped(given: int, used: int) -> None:
    data = valid()
    data["agents"]["helper"]["max_iterations"] = given
    assert load(data).agents["helper"].max_iterations == used


# --- environment variables --------------------------------------------------------------------


def test_env_expansion_in_nested_strings_with_defaults_and_escapes() -> None:
    data = valid()
    data["mcpServers"]["fs"] |= {
        "args": ["--root", "${ROOT}", "${MISSING:-/tmp}", "${EMPTY:-fallback}", "${EMPTY}"],
        "env": {"${NOT_A_KEY}": "$${LITERAL} and $HOME and ${ROOT}/x"},
    }
    data["models"]["default"]["extra"] = {"nested": [{"deep": "${ROOT}"}], "n": 3}
    config = load(data, {"ROOT": "/data", "EMPTY": ""})
    fs = config.mcp_servers["fs"]
    assert fs.args == ["--root", "/data", "/tmp", "fallback", ""]
    assert fs.env == {"${NOT_A_KEY}": "${LITERAL} and $HOME and /data/x"}
    assert config.models["default"].extra == {"nested": [{"deep": "/data"}], "n": 3}


def test_env_expansion_feeds_numbers() -> None:
    data = valid()
    data["mcpServers"]["fs"]["timeout"] = "${FS_TIMEOUT:-15}"
    assert load(data).mcp_servers["fs"].timeout == 15.0


def test_missing_and_malformed_env_references() -> None:
    data = valid()
    data["models"]["default"]["api_key"] = "${OPENAI_API_KEY}"
    data["mcpServers"]["fs"]["args"] = ["${A}", "${B} ${C:-c} ${D}", "${not valid}"]
    data["server"] = {"auth_tokens": ["${AGENTS_MCP_TOKEN}"]}
    assert errors(data) == snapshot("""\
agents.toml: mcpServers.fs.args[0]: environment variable A is not set (use ${A:-default} for a default)
agents.toml: mcpServers.fs.args[1]: environment variable B is not set (use ${B:-default} for a default)
agents.toml: mcpServers.fs.args[1]: environment variable D is not set (use ${D:-default} for a default)
agents.toml: mcpServers.fs.args[2]: invalid ${…}: write ${NAME} or ${NAME:-default}, or $${ for a literal ${
agents.toml: server.auth_tokens[0]: environment variable AGENTS_MCP_TOKEN is not set (use ${AGENTS_MCP_TOKEN:-default} for a default)\
""")


def test_a_model_with_an_unset_variable_is_set_aside_not_an_error() -> None:
    """One unset key must not stop the agents on other models: the model is left out of
    ``models`` with its unset variables, and its agents fail only when called."""
    data = valid()
    data["models"]["keyed"] = {
        "base_url": "${KEYED_URL}",
        "api_key": "${KEYED_KEY}",
        "model": "${KEYED_URL}",
    }
    data["agents"]["other"] = {"description": "On the keyed model.", "model": "keyed"}
    config = load(data)
    assert list(config.models) == ["default", "fast"]
    assert config.unresolved_models == {"keyed": ("KEYED_URL", "KEYED_KEY")}
    assert config.agents["other"].model == "keyed"
    assert "unresolved_models" not in config.model_dump()
    # Its other problems are still reported, with the rest of the file's.
    data["models"]["keyed"]["temperature"] = 7
    data["models"]["keyed"]["tempreature"] = 1
    assert errors(data) == snapshot("""\
agents.toml: models.keyed.temperature: must be at most 2
agents.toml: models.keyed.tempreature: unknown key; did you mean 'temperature'? valid keys: api_key, base_url, context_tokens, extra, max_tokens, model, price, provider, stream, temperature, timeout\
""")
    # Not a file key.
    data = valid() | {"unresolved_models": {"x": ["Y"]}}
    assert "unresolved_models: unknown key" in errors(data)


def test_empty_api_key_means_none_but_empty_token_is_an_error() -> None:
    data = valid()
    data["models"]["default"]["api_key"] = "${OPENAI_API_KEY:-}"
    assert load(data).models["default"].api_key is None
    data["server"] = {"auth_tokens": ["ok", "${AGENTS_MCP_TOKEN}", " "]}
    assert errors(data, {"AGENTS_MCP_TOKEN": ""}) == snapshot("""\
agents.toml: server.auth_tokens[1]: empty token (is its environment variable empty?)
agents.toml: server.auth_tokens[2]: empty token (is its environment variable empty?)\
""")


# --- unknown keys and bad values --------------------------------------------------------------


def test_unknown_keys_at_every_depth() -> None:
    data = valid()
    data["mcp_servers"] = {}
    data["path"] = "elsewhere.toml"
    data["mcpServers"]["fs"]["enabled"] = True
    data["models"]["default"]["apiKey"] = "sk-hidden"
    data["agents"]["helper"]["colour"] = "red"
    data["agents"]["helper"]["require_approval"] = {"always": [], "sometimes": ["fs__x"]}
    data["server"] = {"port": 8000}
    assert errors(data) == snapshot("""\
agents.toml: agents.helper.colour: unknown key; valid keys: access, agents, budget, default_personality, description, disabled_tools, instructions, instructions_file, max_iterations, model, on_cancel, output_schema, output_schema_file, params, personalities, require_approval, servers, tools
agents.toml: agents.helper.require_approval.sometimes: unknown key; valid keys: always, default, never
agents.toml: mcpServers.fs.enabled: unknown key; valid keys: args, auth, client_id, client_metadata_url, client_secret, command, cwd, env, headers, init_timeout, issuer, kind, max_result_bytes, private_key, protocol, required, scopes, signing_algorithm, timeout, transport, type, url
agents.toml: mcp_servers: unknown key; did you mean 'mcpServers'? valid keys: agents, mcpServers, model_aliases, models, server
agents.toml: models.default.apiKey: unknown key; did you mean 'api_key'? valid keys: api_key, base_url, context_tokens, extra, max_tokens, model, price, provider, stream, temperature, timeout
agents.toml: path: unknown key; valid keys: agents, mcpServers, model_aliases, models, server
agents.toml: server.port: unknown key; valid keys: agents_from, agents_from_approval, allowed_hosts, allowed_origins, approval_prompt, approver, auth_tokens, budgets, dashboard, dashboard_port, db, elicitation_timeout, jwt, lease_seconds, max_depth, max_stored_result, max_total_llm_requests, name, oauth_callback_port, progress_interval, public_url, question_timeout, reply_budget, require_tokens, retain_days, sqlite_durability, stateless_http, task_poll_interval, task_ttl_seconds, telemetry, tokens, tool_result_budget, wait_seconds\
""")


def test_bad_types_and_ranges() -> None:
    data = valid()
    data["mcpServers"]["fs"] |= {"args": "--verbose", "timeout": 0, "env": {"N": 1}}
    data["mcpServers"]["time"] |= {"url": "localhost:8000/mcp", "protocol": "2025"}
    data["models"]["default"] |= {"temperature": 3, "max_tokens": 0, "provider": "gemini"}
    data["models"]["fast"] = {"provider": "demo", "stream": "sometimes", "context_tokens": 0}
    data["agents"]["helper"] |= {"description": "", "max_iterations": "many"}
    data["agents"]["x" * 65] = {"description": "Too long a name.", "model": "fast"}
    data["agents"]["other"] = "not a table"
    assert errors(data) == snapshot("""\
agents.toml: agents.helper.description: must not be empty
agents.toml: agents.helper.max_iterations: expected an integer
agents.toml: agents.other: expected a table
agents.toml: agents.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: invalid agent name: use 1 to 64 letters, digits, '_' or '-'
agents.toml: mcpServers.fs.args: expected a list
agents.toml: mcpServers.fs.env.N: expected a string
agents.toml: mcpServers.fs.timeout: must be greater than 0
agents.toml: mcpServers.time.protocol: expected 'legacy', 'auto' or '2026-07-28', got '2025'
agents.toml: mcpServers.time.url: expected an http:// or https:// URL
agents.toml: models.default.max_tokens: must be greater than 0
agents.toml: models.default.provider: expected 'openai', 'anthropic', 'responses' or 'demo', got 'gemini'
agents.toml: models.default.temperature: must be at most 2
agents.toml: models.fast.context_tokens: must be greater than 0
agents.toml: models.fast.stream: expected true, false or 'auto', got 'sometimes'\
""")


def test_no_agents() -> None:
    data = valid()
    del data["agents"]
    assert errors(data) == snapshot(
        "agents.toml: agents: at least one agent is required: add an [agents.<name>] table (description, model)"
    )
    data["agents"] = {}
    assert errors(data) == snapshot(
        "agents.toml: agents: at least one agent is required: add an [agents.<name>] table (description, model)"
    )


# --- cross references -------------------------------------------------------------------------


def test_unknown_model_server_and_tools_key() -> None:
    data = valid()
    data["agents"]["helper"] |= {"model": "gpt4", "servers": ["fs", "fs2", "fs"]}
    data["agents"]["writer"] = {
        "description": "Writes.",
        "model": "fast",
        "servers": ["fs"],
        "tools": {"fs": ["write_file"], "time": ["now"]},
    }
    assert errors(data) == snapshot("""\
agents.toml: agents.helper.model: unknown model 'gpt4'; valid: default, fast
agents.toml: agents.helper.servers[1]: unknown server 'fs2'; valid: fs, time
agents.toml: agents.helper.servers[2]: server 'fs' is listed twice
agents.toml: agents.writer.tools.time: server 'time' is not one of this agent's servers; valid: fs\
""")


def test_references_are_checked_alongside_other_errors() -> None:
    data = valid()
    data["models"]["default"]["colour"] = "red"
    del data["mcpServers"]
    data["agents"]["helper"]["model"] = "nope"
    assert errors(data) == snapshot("""\
agents.toml: agents.helper.model: unknown model 'nope'; valid: default, fast
agents.toml: agents.helper.servers[0]: unknown server 'fs'; valid: (none defined)
agents.toml: agents.helper.servers[1]: unknown server 'time'; valid: (none defined)
agents.toml: models.default.colour: unknown key; valid keys: api_key, base_url, context_tokens, extra, max_tokens, model, price, provider, stream, temperature, timeout\
""")


# --- downstream servers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a__b", "fs_", "with space", "dot.ted"])
def test_bad_server_names(name: str) -> None:
    data = valid()
    data["mcpServers"][name] = {"command": "x"}
    key = name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)
    assert errors(data).startswith(f"agents.toml: mcpServers.{key}: invalid server name: ")


def test_server_name_with_separator_message() -> None:
    data = valid()
    data["mcpServers"]["my__fs"] = {"command": "x"}
    assert errors(data) == snapshot(
        "agents.toml: mcpServers.my__fs: invalid server name: use letters, digits, '-' and single '_' (not '__', not at the end), because tools are offered as <server>__<tool>"
    )


def test_command_and_url_both_or_neither() -> None:
    data = valid()
    data["mcpServers"]["both"] = {"command": "x", "url": "http://x"}
    data["mcpServers"]["neither"] = {"args": ["x"]}
    assert errors(data) == snapshot("""\
agents.toml: mcpServers.both: has both command and url; use command (plus args, env, cwd) for stdio or url (plus headers) for HTTP
agents.toml: mcpServers.neither: needs command or url; use command (plus args, env, cwd) for stdio or url (plus headers) for HTTP\
""")


def test_keys_of_the_other_kind_and_contradicting_type() -> None:
    data = valid()
    data["mcpServers"]["fs"] |= {"headers": {"A": "b"}, "type": "http"}
    data["mcpServers"]["time"] |= {"args": ["x"], "cwd": "/", "transport": "stdio"}
    data["mcpServers"]["sse"] = {"type": "sse", "url": "http://x"}
    assert errors(data) == snapshot("""\
agents.toml: mcpServers.fs.headers: only valid with url (HTTP), not command
agents.toml: mcpServers.fs.type: 'http' contradicts the server's keys; valid: 'stdio'
agents.toml: mcpServers.sse.type: expected 'stdio', 'http' or 'streamable-http', got 'sse'
agents.toml: mcpServers.time.args: only valid with command (stdio), not url
agents.toml: mcpServers.time.cwd: only valid with command (stdio), not url
agents.toml: mcpServers.time.transport: 'stdio' contradicts the server's keys; valid: 'http' or 'streamable-http'\
""")


# --- approval policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["always", "never", "read_only"])
def test_approval_policy_modes(mode: str) -> None:
    data = valid()
    data["agents"]["helper"]["require_approval"] = mode
    assert load(data).agents["helper"].require_approval == mode


def test_approval_rules_parse() -> None:
    data = valid()
    data["agents"]["helper"]["require_approval"] = {"always": ["fs__write"], "never": ["time__*"]}
    policy = load(data).agents["helper"].require_approval
    assert policy == ApprovalRules(always=["fs__write"], never=["time__*"], default="always")


def test_approval_rule_errors() -> None:
    data = valid()
    data["agents"]["helper"]["require_approval"] = {
        "always": ["fs__write", "time__*", "git__push"],
        "never": ["fs__read", "fs__write", "time__*"],
        "default": "read_only",
    }
    data["agents"]["other"] = {
        "description": "Other.",
        "model": "fast",
        "servers": ["fs"],
        "require_approval": {"always": ["fs", "__x", "fs__"], "default": "sometimes"},
    }
    data["agents"]["third"] = {"description": "Third.", "model": "fast", "require_approval": 5}
    data["agents"]["fourth"] = {"description": "4.", "model": "fast", "require_approval": "maybe"}
    data["agents"]["fifth"] = {
        "description": "Fifth.",
        "model": "fast",
        "servers": ["fs"],
        "require_approval": {"always": ["fs__write", "git__push"], "never": ["time__*"]},
    }
    assert errors(data) == snapshot("""\
agents.toml: agents.fifth.require_approval.always[1]: server 'git' is not one of this agent's servers; valid: fs
agents.toml: agents.fifth.require_approval.never[0]: server 'time' is not one of this agent's servers; valid: fs
agents.toml: agents.fourth.require_approval: expected 'always', 'never' or 'read_only', got 'maybe'
agents.toml: agents.helper.require_approval.never[1]: also in always; list a name in one only
agents.toml: agents.helper.require_approval.never[2]: also in always; list a name in one only
agents.toml: agents.other.require_approval.always[0]: expected '<server>__<tool>' or '<server>__*', got 'fs'
agents.toml: agents.other.require_approval.always[1]: expected '<server>__<tool>' or '<server>__*', got '__x'
agents.toml: agents.other.require_approval.always[2]: expected '<server>__<tool>' or '<server>__*', got 'fs__'
agents.toml: agents.other.require_approval.default: expected 'always', 'never' or 'read_only', got 'sometimes'
agents.toml: agents.third.require_approval: expected 'always', 'never', 'read_only' or a table with keys always, never, default\
""")


RULES = ApprovalRules(
    always=["fs__write_file", "shell__*"],
    never=["fs__*", "shell__pwd"],
    default="read_only",
)


@pytest.mark.parametrize(
    ("policy", "server", "tool", "read_only", "required"),
    [
        ("always", "fs", "read_file", True, True),
        ("always", "fs", "write_file", False, True),
        ("never", "fs", "read_file", True, False),
        ("never", "fs", "write_file", False, False),
        ("read_only", "fs", "read_file", True, False),
        ("read_only", "fs", "write_file", False, True),
        # exact names win over server__*, whichever list they are in
        (RULES, "fs", "write_file", False, True),
        (RULES, "shell", "pwd", False, False),
        # then server__*
        (RULES, "fs", "read_file", False, False),
        (RULES, "shell", "rm", True, True),
        # then the default, applied like a plain mode
        (RULES, "web", "fetch", True, False),
        (RULES, "web", "post", False, True),
        (ApprovalRules(), "web", "fetch", True, True),
        (ApprovalRules(default="never"), "web", "post", False, False),
    ],
)
def test_approval_required(
    policy: ApprovalPolicy, server: str, tool: str, read_only: bool, required: bool
) -> None:
    assert approval_required(policy, server, tool, read_only) is required


def test_approval_rules_model_rejects_a_name_in_both_lists() -> None:
    with pytest.raises(ValueError, match="also in always"):
        ApprovalRules(always=["fs__x"], never=["fs__x"])


# --- file handling ------------------------------------------------------------------------------


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    file = tmp_path / "agents.toml"
    file.write_text('[agents.helper]\ndescription = "Helps."\nmodel = default\n')
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value).replace(str(tmp_path), "<tmp>") == snapshot(
        "<tmp>/agents.toml: line 3, column 9: TOML syntax error: Invalid value"
    )


def test_json_syntax_error_has_line(tmp_path: Path) -> None:
    file = tmp_path / "agents.json"
    file.write_text('{\n  "agents": {\n    "helper": {"model": "x",}\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value).replace(str(tmp_path), "<tmp>") == snapshot(
        "<tmp>/agents.json: line 3, column 29: JSON syntax error: Expecting property name enclosed in double quotes"
    )


def test_json_top_level_must_be_an_object(tmp_path: Path) -> None:
    file = tmp_path / "agents.json"
    file.write_text("[]")
    with pytest.raises(ConfigError, match=r"agents\.json: \(top level\): expected a JSON object"):
        load_config(file)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


def test_other_suffixes_are_toml(tmp_path: Path) -> None:
    file = tmp_path / "agents.conf"
    file.write_bytes((CONFIGS / "full.toml").read_bytes())
    assert load_config(file, environ=ENV).agents.keys() == {"researcher", "echo"}


def test_error_names_the_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("examples").mkdir()
    Path("examples/agents.toml").write_text(
        '[models.default]\nprovider = "demo"\n[models.fast]\nprovider = "demo"\n'
        '[agents.helper]\ndescription = "Helps."\nmodel = "gpt4"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config("examples/agents.toml")
    assert str(info.value) == snapshot(
        "examples/agents.toml: agents.helper.model: unknown model 'gpt4'; valid: default, fast"
    )


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_stay_out_of_repr_and_errors() -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-SECRET-1",
        "SEARCH_TOKEN": "tok-SECRET-2",
        "AGENTS_MCP_TOKEN": "SECRET-3",
    }
    config = load_config(CONFIGS / "full.toml", environ=secrets)
    # env and headers are plain strings (the pasted shape) but are left out of repr too
    assert "SECRET" not in repr(config) + str(config) + repr(config.mcp_servers["search"])
    assert "SECRET-1" not in config.model_dump_json()
    assert "SECRET-3" not in config.model_dump_json()

    data = valid()
    data["models"]["default"] |= {"api_key": ["sk-SECRET-1"], "temperature": "sk-SECRET-2"}
    data["mcpServers"]["fs"]["env"] = {"TOKEN": 7, "KEY": "SECRET-4"}
    data["server"] = {"auth_tokens": "SECRET-3", "name": ["SECRET-5"]}
    data["agents"]["helper"]["secret"] = "SECRET-6"
    with pytest.raises(ConfigError) as info:
        load(data)
    assert "SECRET" not in str(info.value)
    # pydantic's ValidationError shows input values; it must not ride along in tracebacks
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_allowed_hosts_and_origins_say_what_they_expect() -> None:
    data = valid()
    data["server"] = {
        "allowed_hosts": ["agents.example.com", "https://agents.example.com", "*.lan:8765"],
        "allowed_origins": ["https://app.example.com", "app.example.com", "https://a.b/path"],
    }
    assert errors(data) == snapshot("""\
agents.toml: server.allowed_hosts[1]: expected a host name or address, optionally with a port (no scheme, no path), got 'https://agents.example.com'
agents.toml: server.allowed_origins[1]: expected an origin such as 'https://app.example.com' (scheme and host, no path), got 'app.example.com'
agents.toml: server.allowed_origins[2]: expected an origin such as 'https://app.example.com' (scheme and host, no path), got 'https://a.b/path'\
""")


def test_sqlite_durability_is_full_unless_asked_and_refused_for_postgresql() -> None:
    assert load(valid()).server.sqlite_durability == "full"
    risky = {**valid(), "server": {"sqlite_durability": "may-lose-last-commits"}}
    assert load(risky).server.sqlite_durability == "may-lose-last-commits"
    unknown = {**valid(), "server": {"sqlite_durability": "normal"}}
    assert "server.sqlite_durability" in errors(unknown)
    on_postgres = {"db": "postgresql://u@h/d", "sqlite_durability": "may-lose-last-commits"}
    assert errors({**valid(), "server": on_postgres}) == snapshot(
        "agents.toml: server.sqlite_durability: applies to a SQLite database only; with PostgreSQL its server decides (synchronous_commit): remove sqlite_durability"
    )
