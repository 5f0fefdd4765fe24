"""Background work (batches, eval jobs) yields to interactive requests: a flag the caller sets,
providers read; and a busy answer (429) waited out rather than failed (`patiently`).

The batch runner sets it around its calls into inference; asyncio copies the context into every
task created under it, so the flag reaches the provider without a parameter on every API method.
A provider that serializes work on a resource (llama.cpp's one lock per model) serves the
interactive waiters first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from pocketstack.errors import PocketStackError

T = TypeVar("T")

_background: ContextVar[bool] = ContextVar("pocketstack_background_work", default=False)


def is_background() -> bool:
    return _background.get()


@contextmanager
def background_work() -> Iterator[None]:
    """Calls made inside run after any interactive request waiting for the same model."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


async def patiently(call: Callable[[], Awaitable[T]], *, retries: int, longest_s: float = 8.0) -> T:
    """`call`, with a busy answer (429: the model's queue is full, interactive requests come first)
    waited out `retries` times: after the server's Retry-After when it gives one, else 0.25 s doubling
    up to `longest_s`. Any other error, or a 429 past the retries, is raised."""
    delay = 0.25
    for attempt in itertools.count():
        try:
            return await call()
        except PocketStackError as exc:
            if exc.status != 429 or attempt >= retries:
                raise
            await asyncio.sleep(min(_retry_after(exc) or delay, longest_s))
            delay = min(delay * 2, longest_s)
    raise AssertionError("unreachable")


def _retry_after(exc: PocketStackError) -> float | None:
    try:
        return float(exc.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
