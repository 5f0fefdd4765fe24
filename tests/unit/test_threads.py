"""Process-wide thread settings."""

from __future__ import annotations

import os

import pytest


def test_openblas_threads_do_not_spin_between_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spinning BLAS threads slowed the next query's embedding on llama.cpp's threads (31 ms -> 15 ms per query)
    from pocketstack.providers.threads import quiet_blas

    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    quiet_blas()
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "4"
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "10")
    quiet_blas()
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "10"  # the user's choice wins


def test_call_threads_run_calls_in_order_one_at_a_time_each_on_a_thread_that_ends() -> None:
    # A thread that ends takes llama.cpp's OpenMP team with it: idle teams made other models' barriers sleep.
    import threading
    import time

    from pocketstack.providers.threads import CallThreads

    executor = CallThreads("llama-test")
    running: list[int] = []
    order: list[int] = []
    threads: list[threading.Thread] = []

    def call(index: int) -> int:
        running.append(index)
        assert len(running) == 1, running  # never two at once
        threads.append(threading.current_thread())
        time.sleep(0.01 if index == 0 else 0)
        order.append(index)
        running.remove(index)
        return index * 10

    futures = [executor.submit(call, index) for index in range(4)]
    assert [f.result(timeout=10) for f in futures] == [0, 10, 20, 30]
    assert order == [0, 1, 2, 3]
    failed = executor.submit(lambda: 1 // 0)
    with pytest.raises(ZeroDivisionError):
        failed.result(timeout=10)
    executor.shutdown(wait=True)
    assert len(set(threads)) == 4 and not any(thread.is_alive() for thread in threads)
    assert {thread.name for thread in threads} == {"llama-test"}
    with pytest.raises(RuntimeError):
        executor.submit(print)


async def test_a_stream_closed_early_keeps_what_its_work_returned_when_it_had_already_returned() -> None:
    # Found by bench/load.py: a tool call ends where its object closes, so the reader stops early; under load the
    # generation had often already ended by then, its result was dropped and the chat answered a 500.
    import asyncio
    from collections.abc import Callable
    from contextlib import aclosing

    from pocketstack.providers.threads import BridgedStream

    class Returned(BridgedStream[str, str]):
        """Work that emitted everything and returned before the reader saw its first item."""

        def _start(self, emit: Callable[[str], None]) -> asyncio.Future[str]:
            emit('{"name": "f"}')
            emit("more")
            done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            done.set_result("usage")
            return done

        def _stop(self) -> None:
            raise AssertionError("work that has returned is not told to stop")

    stream = Returned()
    async with aclosing(aiter(stream)) as items:
        async for item in items:
            assert item == '{"name": "f"}'
            break
    assert stream.result == "usage"
