"""Reading agents-mcp's transcript resources as a client does: a page, the cut notes on it,
and a message or a call's arguments whole by following its parts."""

from __future__ import annotations

import re
from typing import Any

import anyio
from fastmcp import Client
from fastmcp.client.client import CallToolResult
from mcp_types import TextContent, TextResourceContents

PART = re.compile(
    r"\n\n\[[^\[\]]*: part (\d+) of (\d+) \((\d+) characters\); (?:next: (\S+)|the last part)\]$"
)
CUT = re.compile(r"\[cut: \d+ of \d+ characters of message (\d+) shown; the whole message: (\S+)")
EARLIER = re.compile(r"^Earlier messages: (\S+)$", re.M)


def text_of(part: object) -> str:
    """The text of a tool result's content block or of a resource's contents: text it must be."""
    assert isinstance(part, (TextContent, TextResourceContents)), part
    return part.text


def structured(result: CallToolResult) -> dict[str, Any]:
    """A tool result's ``structuredContent``, which it must have."""
    assert result.structured_content is not None, result.content
    return result.structured_content


async def read_text(client: Client[Any], uri: str) -> str:
    """The one text content of a resource (bounded wait)."""
    with anyio.fail_after(30):
        (content,) = await client.read_resource(uri)
    assert isinstance(content, TextResourceContents)
    return content.text


async def read_parts(client: Client[Any], uri: str) -> tuple[str, list[str]]:
    """A message or call's arguments whole, read part after part, and each part as read."""
    read: list[str] = []
    chunks: list[str] = []
    while True:
        text = await read_text(client, uri)
        read.append(text)
        found = PART.search(text)
        if found is None:
            assert not chunks, "a part without its note"
            return text, read
        chunks.append(text[: found.start()])
        if found.group(4) is None:
            assert int(found.group(1)) == int(found.group(2)) == len(chunks)
            whole = "".join(chunks)
            assert len(whole) == int(found.group(3))
            return whole, read
        uri = found.group(4)


def cut_messages(page: str) -> dict[int, str]:
    """The messages a page shows cut: index -> the resource that has it whole."""
    return {int(m.group(1)): m.group(2) for m in CUT.finditer(page)}


async def pages(client: Client[Any], uri: str) -> list[str]:
    """Every page of a transcript, newest first, following the "Earlier messages" links."""
    found = [await read_text(client, uri)]
    while (earlier := EARLIER.search(found[-1])) is not None:
        found.append(await read_text(client, earlier.group(1)))
    return found
