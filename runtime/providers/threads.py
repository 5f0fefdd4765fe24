"""Blocking work in worker threads, its results bridged to the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def quiet_blas() -> None:
    """Keep OpenBLAS's idle threads from spinning; call before numpy is first imported.

    After each call OpenBLAS busy-waits its worker threads for a while (its default timeout). The
    vector scan's matrix product is followed, a moment later, by the next query's embedding on
    llama.cpp's threads, which then share the cores with spinning threads: measured here, a
    vector query took 31 ms instead of 15. The shortest timeout keeps both BLAS threads for the
    scan itself. A value the user set wins.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


class ThreadStream(Generic[T, R]):
    """Run `work(emit, cancelled)` in a thread; iterate what it emits; `result` is its return.

    Closing the iterator early (the client went away) sets `cancelled`, and the close waits for
    the thread to notice, so whatever the work holds (a model's lock) is free once it returns.
    """

    def __init__(
        self, work: Callable[[Callable[[T], None], threading.Event], R], executor: Executor | None = None
    ) -> None:
        self._work = work
        self._executor = executor
        self.cancelled = threading.Event()
        self.result: R | None = None

    async def __aiter__(self) -> AsyncGenerator[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: T) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> R:
            try:
                return self._work(emit, self.cancelled)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._executor, run)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield item  # type: ignore[misc]
            self.result = await future
        finally:
            if not future.done():
                self.cancelled.set()
                await asyncio.shield(asyncio.wait([future]))
