"""The event log of a background response that streams: its task writes, any number of readers follow.

The task runs whatever happens to its readers (a client that leaves does not stop it, as in
OpenAI); a reader starts after any sequence number and then follows the live events until the
response ends. Once it ends, the log is stored (ResponseStore.add_events) and read from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pocketstack._generated import models


@dataclass
class EventLog:
    events: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def append(self, event: models.ResponseStreamEvent) -> None:
        async with self._changed:
            self.events.append(event.model_dump(mode="json"))
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.done = True
            self._changed.notify_all()

    def _beyond(self, index: int) -> bool:
        return self.done or index < len(self.events)

    async def follow(self, after: int) -> AsyncIterator[models.ResponseStreamEvent]:
        """The events after sequence number `after`, then each new one, until the response ends."""
        index = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._beyond, index))
                fresh, ended = self.events[index:], self.done
            index += len(fresh)
            for event in fresh:
                if event["sequence_number"] > after:
                    yield models.ResponseStreamEvent.model_validate(event)
            if ended and index >= len(self.events):
                return
