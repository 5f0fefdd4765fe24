"""Background work (batches) yields to interactive requests: a flag the caller sets, providers read.

The batch runner sets it around its calls into inference; asyncio copies the context into every
task created under it, so the flag reaches the provider without a parameter on every API method.
A provider that serializes work on a resource (llama.cpp's one lock per model) serves the
interactive waiters first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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
