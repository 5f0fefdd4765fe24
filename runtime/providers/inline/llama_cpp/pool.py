"""Loaded models: lazy loading, one lock per model, a bounded wait queue, LRU under a memory budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pocketstack.errors import TooManyRequestsError
from pocketstack.providers.inline.llama_cpp.prompt_cache import PromptCache
from pocketstack.providers.threads import CallThreads

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ModelKey:
    path: Path
    embedding: bool


@dataclass
class Resident:
    """A loaded model and its calls: one at a time, each on a thread that ends with it.

    llama.cpp's OpenMP build keeps a team of compute threads per calling thread while that thread
    lives; idle teams of other models made this one's barriers sleep instead of spin (3x slower
    decoding on 2 cores, see CallThreads). Threads that end leave no idle team behind, and
    models still run side by side.
    """

    key: ModelKey
    llm: Any
    size_bytes: int
    executor: CallThreads
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    last_used: float = field(default_factory=time.monotonic)
    prompt_cache: PromptCache | None = None  # chat models: reusable prompt state (prompt_cache.py)

    @property
    def busy(self) -> bool:
        return self.lock.locked() or self.waiting > 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def close(self) -> None:
        self.executor.submit(self.llm.close)
        self.executor.shutdown(wait=True)


class ModelPool:
    def __init__(self, loader: Callable[[ModelKey], Any], budget_bytes: int, max_waiting: int) -> None:
        self._loader = loader
        self._budget = budget_bytes
        self._max_waiting = max_waiting
        self._resident: dict[ModelKey, Resident] = {}
        self._loading: dict[ModelKey, asyncio.Task[Resident]] = {}

    @property
    def resident(self) -> list[ModelKey]:
        return list(self._resident)

    async def _get(self, key: ModelKey) -> Resident:
        found = self._resident.get(key)
        if found is not None:
            return found
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key))
            self._loading[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: ModelKey) -> Resident:
        try:
            started = time.monotonic()
            executor = CallThreads(f"llama-{key.path.stem[:9]}")  # the OS keeps 15 bytes of a name
            try:
                llm = await asyncio.get_running_loop().run_in_executor(executor, self._loader, key)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            resident = Resident(key, llm, key.path.stat().st_size, executor)
            self._resident[key] = resident
            log.info("loaded %s in %.2f s", key.path.name, time.monotonic() - started)
            self._evict(keep=key)
            return resident
        finally:
            self._loading.pop(key, None)

    def _evict(self, keep: ModelKey) -> None:
        """Unload idle models, least recently used first, until the budget holds (or none is idle)."""
        total = sum(r.size_bytes for r in self._resident.values())
        for resident in sorted(self._resident.values(), key=lambda r: r.last_used):
            if total <= self._budget:
                break
            if resident.key == keep or resident.busy:
                continue
            del self._resident[resident.key]
            resident.close()
            total -= resident.size_bytes
            log.info("unloaded %s (memory budget)", resident.key.path.name)

    @asynccontextmanager
    async def use(self, key: ModelKey) -> AsyncIterator[Resident]:
        """Hold the model exclusively; 429 when too many requests already wait for it."""
        resident = await self._get(key)
        if resident.waiting >= self._max_waiting:
            raise TooManyRequestsError(
                f"{resident.waiting} requests are already waiting for {key.path.name}; retry shortly.",
                code="model_busy",
                retry_after=1,
            )
        resident.waiting += 1
        try:
            await resident.lock.acquire()
        finally:
            resident.waiting -= 1
        try:
            yield resident
        finally:
            resident.last_used = time.monotonic()
            resident.lock.release()

    def close(self) -> None:
        for resident in self._resident.values():
            resident.close()
        self._resident.clear()
