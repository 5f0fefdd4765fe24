"""Loaded models: lazy loading, a priority lock per model (`parallel` places for a batched chat model,
one otherwise), a bounded wait queue, LRU under a memory budget.

The lock serves interactive waiters before background ones (batches, providers/priority.py), so a
running batch costs a chat request at most the one batch request already holding the model.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace

from pocketstack.errors import TooManyRequestsError
from pocketstack.providers.inline.llama_cpp.prompt_cache import PromptCache
from pocketstack.providers.priority import is_background
from pocketstack.providers.threads import CallThreads
from pocketstack.telemetry import serving

log = logging.getLogger(__name__)
T = TypeVar("T")
EMBEDDING_PLACES = 64  # embedding requests served at once (beyond: the wait queue, then 429)


@dataclass(frozen=True)
class ModelKey:
    path: Path
    embedding: bool


class PriorityLock:
    """`capacity` holders at a time (a batched model's slots; one otherwise); on release the oldest
    interactive waiter goes first, then the oldest background one. A place is handed over, never free
    in between, so nobody jumps the queue."""

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = capacity
        self.held = 0
        self._interactive: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        """Every place is taken: a new request would wait."""
        return self.held >= self.capacity

    @property
    def interactive_waiting(self) -> int:
        return len(self._interactive)

    @property
    def waiting(self) -> int:
        return len(self._interactive) + len(self._background)

    async def acquire(self, *, background: bool = False) -> None:
        if self.held < self.capacity and not self.waiting:
            self.held += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._background if background else self._interactive
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed the lock just as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._interactive, self._background):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.held -= 1


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
    lock: PriorityLock = field(default_factory=PriorityLock)
    last_used: float = field(default_factory=time.monotonic)
    prompt_cache: PromptCache | None = None  # chat models: reusable prompt state (prompt_cache.py)
    scheduler: Any = None  # chat models with `parallel` > 1: the batch loop (scheduler.py)
    memory_bytes: int = 0  # what the memory gauge reports (the loader's measure; the file size without one)

    @property
    def busy(self) -> bool:
        return self.lock.held > 0 or self.lock.waiting > 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def close(self) -> None:
        if self.scheduler is not None:
            self.executor.submit(self.scheduler.close)  # its loop ends before the context is freed
        self.executor.submit(self.llm.close)
        self.executor.shutdown(wait=True)


class ModelPool:
    def __init__(
        self,
        loader: Callable[[ModelKey], Any],
        budget_bytes: int,
        max_waiting: int,
        measure: Callable[[Any], int] | None = None,
        parallel: int = 1,
    ) -> None:
        self._loader = loader
        self._measure = measure
        self._budget = budget_bytes
        self._max_waiting = max_waiting
        self._parallel = parallel  # requests a chat model serves at once (its scheduler's slots)
        self._resident: dict[ModelKey, Resident] = {}
        self._loading: dict[ModelKey, asyncio.Task[Resident]] = {}
        serving.queue_depth.add(self._queue_depths)
        serving.models_loaded.add(self._loaded)
        serving.model_memory.add(self._memory)

    # -- what the gauges read (on the metrics collector's thread: plain reads, no locks taken) --

    def _queue_depths(self) -> list[serving.Reading]:
        return [(r.lock.waiting, {serving.MODEL: r.key.path.name}) for r in list(self._resident.values())]

    def _loaded(self) -> list[serving.Reading]:
        return [(1, {serving.MODEL: r.key.path.name}) for r in list(self._resident.values())]

    def _memory(self) -> list[serving.Reading]:
        return [(r.memory_bytes, {serving.MODEL: r.key.path.name}) for r in list(self._resident.values())]

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
            # Loading llama.cpp's libraries starts one native thread that lives as long as the process and
            # takes the native name of the thread that imports them: imported on a thread with the
            # process's name (not by the model's loader, named after the model), it is not mistaken for a
            # model's compute thread (`top -H`, test_llama_cpp_threads). Not at start: the server listens
            # before llama.cpp loads (test_startup).
            await asyncio.to_thread(importlib.import_module, "llama_cpp")
            executor = CallThreads(f"llama-{key.path.stem[:9]}")  # the OS keeps 15 bytes of a name
            try:
                llm = await asyncio.get_running_loop().run_in_executor(executor, self._loader, key)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            resident = Resident(key, llm, key.path.stat().st_size, executor)
            # An embedding model's requests go in together: its batcher groups them into decodes (embed_batch.py)
            resident.lock.capacity = EMBEDDING_PLACES if key.embedding else self._parallel
            resident.memory_bytes = self._measure(llm) if self._measure is not None else resident.size_bytes
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
        """Hold the model exclusively; 429 when too many interactive requests already wait for it.

        Background work (a batch) waits behind every interactive request; its own waiting is bounded
        by the batch runner (one request per model at a time), not by the queue limit.

        The wait (loading the model included) goes to the `pocketstack.queue.wait` histogram, and on
        the current span (the router's inference span) when there was one."""
        started = time.perf_counter()
        loaded = key in self._resident
        resident = await self._get(key)
        background = is_background()
        waiting = resident.lock.interactive_waiting
        if not background and waiting >= self._max_waiting:
            raise TooManyRequestsError(
                f"{waiting} requests are already waiting for {key.path.name}; retry shortly.",
                code="model_busy",
                retry_after=1,
            )
        queued = resident.lock.locked() or resident.lock.waiting > 0
        await resident.lock.acquire(background=background)
        waited = time.perf_counter() - started
        serving.queue_wait.record(waited, {serving.MODEL: key.path.name})
        if queued or not loaded:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("pocketstack.queue.wait_s", waited)
                if not loaded:
                    span.set_attribute("pocketstack.model.loaded_now", True)  # this request waited for the load
        try:
            yield resident
        finally:
            resident.last_used = time.monotonic()
            resident.lock.release()

    def close(self) -> None:
        for resident in self._resident.values():
            resident.close()
        self._resident.clear()
        serving.queue_depth.remove(self._queue_depths)
        serving.models_loaded.remove(self._loaded)
        serving.model_memory.remove(self._memory)
