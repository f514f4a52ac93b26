"""The ``agents-mcp`` command line: one module per command family.

``commands`` parses the command line and dispatches; ``chat``, ``check``, ``history`` and
``starter`` implement the commands; ``terminal`` is where they write.
"""

from agents_mcp.cli.commands import main

__all__ = ["main"]
