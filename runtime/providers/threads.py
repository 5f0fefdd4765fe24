"""Blocking work in worker threads, its results bridged to the event loop."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor, Future
from typing import Generic, ParamSpec, TypeVar

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

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


class CallThreads(Executor):
    """Runs each call on a thread of its own that ends with the call; calls run one at a time, in order.

    llama.cpp's OpenMP build (GCC's libgomp) keeps a team of compute threads for each thread that
    calls it, for as long as that thread lives, and counts the idle team's threads. Once counted
    threads outnumber the cores, every barrier waits ~100 spins instead of 300,000 before sleeping
    on a futex, and ggml meets a barrier at every graph node: after one request to the embedding
    model on its own long-lived thread, the chat model's decoding slept ~850 times a token instead
    of ~1, and ran 17-25 tokens/s instead of 72 on 2 cores, for as long as the server lived. A
    thread that ends takes its team with it, so an idle model holds no team and a model computing
    alone gets the full spin; starting a thread (and its team) costs well under a millisecond.
    The native name (`name`, which the team's threads inherit) makes both visible in `top -H`.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._last: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: cannot run calls after shutdown")
            previous = self._last

            def run() -> None:
                if previous is not None:
                    previous.join()  # one call at a time, as a single worker thread did
                _name_native_thread(self._name)
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # handed to the caller, as ThreadPoolExecutor does
                    future.set_exception(exc)
                else:
                    future.set_result(result)

            self._last = threading.Thread(target=run, name=self._name)
            self._last.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            last = self._last
        if wait and last is not None:
            last.join()


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def _name_native_thread(name: str) -> None:
    """Name the calling thread for the OS (Python 3.11 names it only for Python); Linux only."""
    if sys.platform == "linux":
        _libc().prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME: at most 15 bytes


class BridgedStream(Generic[T, R]):
    """Work on another thread, as an async iterator of what it emits; `result` is what it returned.

    Subclasses say how the work starts (`_start`: handed `emit`, it answers the work's future) and how
    it is told to stop (`_stop`). Closing the iterator early (the client went away) stops the work, and
    the close waits for it to notice, so whatever it holds (a model's lock, a batch slot) is free once
    it returns.
    """

    result: R | None = None

    def _start(self, emit: Callable[[T], None]) -> asyncio.Future[R]:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    async def __aiter__(self) -> AsyncGenerator[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: T) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        finished = self._start(emit)
        # The future's callback runs on the loop after every item the work emitted before it returned.
        finished.add_done_callback(lambda _: queue.put_nowait(_DONE))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield item  # type: ignore[misc]
            self.result = await finished
        finally:
            if not finished.done():
                self._stop()
                await asyncio.shield(asyncio.wait([finished]))
            # Closed early, the work stopped or had already returned (a busy loop reads behind it): what it
            # did is its result either way (its usage, its finish reason).
            if self.result is None and not finished.cancelled() and finished.exception() is None:
                self.result = finished.result()


class ThreadStream(BridgedStream[T, R]):
    """Run `work(emit, cancelled)` on a thread of `executor` (the loop's default when None)."""

    def __init__(
        self, work: Callable[[Callable[[T], None], threading.Event], R], executor: Executor | None = None
    ) -> None:
        self._work = work
        self._executor = executor
        self.cancelled = threading.Event()
        self.result: R | None = None

    def _start(self, emit: Callable[[T], None]) -> asyncio.Future[R]:
        return asyncio.get_running_loop().run_in_executor(self._executor, self._work, emit, self.cancelled)

    def _stop(self) -> None:
        self.cancelled.set()
