"""The public surface is deliberate: pinned, sorted, and every public error exported."""

from __future__ import annotations

import inspect

import agents_mcp
from agents_mcp import errors


def test_all_is_sorted_and_resolvable() -> None:
    assert agents_mcp.__all__ == sorted(agents_mcp.__all__)
    for name in agents_mcp.__all__:
        assert getattr(agents_mcp, name) is not None


def test_every_error_class_is_exported() -> None:
    classes = {
        name
        for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.AgentsMCPError)
    }
    assert classes <= set(agents_mcp.__all__)
