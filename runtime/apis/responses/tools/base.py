"""The one shape of a tool the server runs between model calls: file_search, web_search, MCP, tool groups.

The model sees each as functions; its calls never reach the client. The turn (turn.py) asks every
tool whether it owns a call, runs it, tells it as an output item of the tool's kind (with its
stream events) and gives the model the tool's reply — or stops there when the tool halts the turn
(an MCP call that needs the user's approval).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from pocketstack._generated import models


@dataclass(frozen=True)
class ToolOutcome:
    item: dict[str, Any]  # the output item that tells the call
    reply: str | None  # what the model reads next; None: the turn stops here for the user
    results: int | None = None  # the hits of a search (its telemetry counts them)

    @property
    def halts(self) -> bool:
        return self.reply is None


class ServerTool(Protocol):
    @property
    def kind(self) -> str:
        """The type of the items that tell its calls: `file_search_call`."""
        ...

    @property
    def prefix(self) -> str:
        """Their ids' prefix."""
        ...

    @property
    def searching(self) -> bool:
        """Whether a `searching` event comes before the work."""
        ...

    def functions(self) -> list[dict[str, Any]]:
        """The chat function tools the model sees."""
        ...

    def owns(self, name: str) -> bool: ...

    def tool_type(self, name: str) -> str:
        """Its calls' `gen_ai.tool.type` (telemetry/tools.py): datastore, extension."""
        ...

    async def run(self, call: models.ToolCall, item_id: str) -> ToolOutcome: ...

    def closing_event(self, item: dict[str, Any]) -> str | None:
        """The event that ends the item's work (`completed`, `failed`), or None for none."""
        ...


def failed_or_completed(item: dict[str, Any]) -> str:
    return "failed" if item.get("error") else "completed"


def json_object(arguments: str) -> dict[str, Any] | None:
    """A call's arguments as a JSON object, or None when they are not one."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
