"""The event log of a background response that streams: its task writes, any number of readers follow.

The task runs whatever happens to its readers (a client that leaves does not stop it, as in
OpenAI); a reader starts after any sequence number and then follows the live events until the
response ends. Each event is stored (`keep`) before any reader sees it, so after a crash the
stored events are all a client can have been told: the next start ends them with
`response.failed` and a client following again (`starting_after` its last event) reads that end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pocketstack._generated import models


@dataclass
class EventLog:
    keep: Callable[[dict[str, Any]], Awaitable[None]]  # stores one event (ResponseStore.add_events)
    events: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def append(self, event: models.ResponseStreamEvent) -> None:
        told = event.model_dump(mode="json")
        await self.keep(told)
        async with self._changed:
            self.events.append(told)
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
