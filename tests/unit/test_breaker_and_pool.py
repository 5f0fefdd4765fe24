"""The circuit breaker's states, and the model pool's locking, queue bound and LRU budget."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pocketstack.errors import TooManyRequestsError
from pocketstack.providers.inline.llama_cpp.pool import EMBEDDING_PLACES, ModelKey, ModelPool
from pocketstack.providers.priority import background_work
from pocketstack.providers.remote.breaker import CircuitBreaker


def test_breaker_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure("refused")
    assert breaker.state == "closed" and breaker.available()
    breaker.record_failure("refused")
    assert breaker.state == "open" and not breaker.available()
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.available()
    assert not breaker.available()  # one trial at a time: the others wait for its verdict
    breaker.record_failure("still down")  # the trial failed: open again, for another cooldown
    assert breaker.state == "open" and breaker.last_error == "still down"
    now[0] = 25.0
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0


def test_asking_whether_the_breaker_admits_leaves_the_half_open_trial() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure("refused")
    assert not breaker.admits() and not breaker.available()
    now[0] = 10.0
    assert breaker.admits() and breaker.admits()  # health reports ask as often as they like
    assert breaker.available()  # the trial is still there for a request
    assert not breaker.admits() and not breaker.available()  # and then it is taken


class FakeModel:
    def __init__(self, key: ModelKey) -> None:
        self.key = key
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _key(tmp_path: Path, name: str, size: int) -> ModelKey:
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    return ModelKey(path, embedding=False)


async def test_pool_loads_once_and_evicts_idle_models_over_budget(tmp_path: Path) -> None:
    loads: list[str] = []

    def loader(key: ModelKey) -> Any:
        loads.append(key.path.name)
        return FakeModel(key)

    pool = ModelPool(loader, budget_bytes=150, max_waiting=4)
    a, b = _key(tmp_path, "a", 100), _key(tmp_path, "b", 100)
    results = await asyncio.gather(*(pool._get(a) for _ in range(3)))
    assert loads == ["a"] and len({id(r) for r in results}) == 1
    async with pool.use(a) as resident_a, pool.use(b):
        assert set(pool.resident) == {a, b}  # a is busy, so it stays despite the budget
    async with pool.use(b):
        pass
    model_a = resident_a.llm
    assert not model_a.closed
    async with pool.use(_key(tmp_path, "c", 100)):
        pass
    assert model_a.closed and pool.resident == [_key(tmp_path, "c", 100)]


async def test_pool_bounds_the_wait_queue(tmp_path: Path) -> None:
    pool = ModelPool(FakeModel, budget_bytes=10**9, max_waiting=1)
    key = _key(tmp_path, "m", 10)
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with pool.use(key):
            held.set()
            await release.wait()

    async def waiter() -> None:
        async with pool.use(key):
            pass

    first = asyncio.create_task(holder())
    await held.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequestsError):
        async with pool.use(key):
            pass
    release.set()
    await asyncio.gather(first, second)


async def test_pool_serves_interactive_waiters_before_background_ones(tmp_path: Path) -> None:
    # A batch's requests (background_work) queue behind chat requests that arrive later, and do not
    # count against the interactive queue limit.
    pool = ModelPool(FakeModel, budget_bytes=10**9, max_waiting=1)
    key = _key(tmp_path, "m", 10)
    served: list[str] = []
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with pool.use(key):
            held.set()
            await release.wait()

    async def request(name: str, *, background: bool) -> None:
        if background:
            with background_work():
                async with pool.use(key):
                    served.append(name)
        else:
            async with pool.use(key):
                served.append(name)

    first = asyncio.create_task(holder())
    await held.wait()
    batch = [asyncio.create_task(request(f"batch{n}", background=True)) for n in range(2)]
    await asyncio.sleep(0)
    chat = asyncio.create_task(request("chat", background=False))
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequestsError):  # the interactive limit still holds
        async with pool.use(key):
            pass
    release.set()
    await asyncio.gather(first, chat, *batch)
    assert served == ["chat", "batch0", "batch1"]


async def test_a_waiter_cancelled_while_handed_the_lock_passes_it_on(tmp_path: Path) -> None:
    pool = ModelPool(FakeModel, budget_bytes=10**9, max_waiting=4)
    key = _key(tmp_path, "m", 10)
    resident = await pool._get(key)
    await resident.lock.acquire()
    cancelled = asyncio.create_task(resident.lock.acquire())
    after = asyncio.create_task(resident.lock.acquire())
    await asyncio.sleep(0)
    resident.lock.release()  # hands it to `cancelled`...
    cancelled.cancel()  # ...which is cancelled before it runs: `after` gets it
    await asyncio.wait_for(after, 1)
    assert cancelled.cancelled() and resident.lock.locked()
    resident.lock.release()
    assert not resident.lock.locked()


async def test_a_batched_chat_model_holds_parallel_requests_and_queues_the_rest(tmp_path: Path) -> None:
    """`parallel` places per chat model (its scheduler's slots), EMBEDDING_PLACES per embedding model (its
    batcher groups them into decodes); the queue limit counts only those waiting beyond the places."""
    pool = ModelPool(FakeModel, budget_bytes=10**9, max_waiting=1, parallel=2)
    chat, embedder = _key(tmp_path, "chat", 10), ModelKey(_key(tmp_path, "emb", 10).path, embedding=True)
    release = asyncio.Event()
    inside: list[str] = []

    async def hold(key: ModelKey, name: str) -> None:
        async with pool.use(key):
            inside.append(name)
            await release.wait()

    holders = [asyncio.create_task(hold(chat, f"chat{n}")) for n in range(3)]
    holders += [asyncio.create_task(hold(embedder, f"emb{n}")) for n in range(2)]
    for _ in range(200):  # the models load on worker threads
        if len(inside) >= 4:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # time enough for a fifth, were there a place for it
    assert sorted(inside) == ["chat0", "chat1", "emb0", "emb1"]  # two chat places; embeddings go in together
    assert pool._resident[embedder].lock.capacity == EMBEDDING_PLACES
    resident = pool._resident[chat]
    assert resident.lock.held == 2 and resident.lock.waiting == 1 and resident.busy
    with pytest.raises(TooManyRequestsError):  # chat2 already waits; the limit is 1
        async with pool.use(chat):
            pass
    release.set()
    await asyncio.gather(*holders)
    assert sorted(inside) == ["chat0", "chat1", "chat2", "emb0", "emb1"]
    assert resident.lock.held == 0 and not resident.busy
