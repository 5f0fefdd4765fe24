"""What serving reports beside the request spans: model queues, loaded models, remote breakers, first tokens.

Providers may import this (a low package, never an API module). They register the live objects
the observable gauges read; the gauges are read only when metrics are collected (a Prometheus
scrape, an OTLP export), on the collector's thread, so the request path pays nothing for them.
Sources are held weakly and removed when their provider stops, so a stopped server's models and
remotes leave the gauges.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from pocketstack.telemetry.instruments import meter

Reading = tuple[float, dict[str, str]]  # a value and its attributes
MODEL = "pocketstack.model"  # the model file a loaded model was read from (its name, never the path)
PROVIDER_ID = "pocketstack.provider_id"
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
QUEUE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]


class Sources:
    """The live objects whose readings make up one observable gauge (bound methods, held weakly)."""

    def __init__(self) -> None:
        self._methods: list[weakref.WeakMethod[Callable[[], Iterable[Reading]]]] = []
        self._lock = threading.Lock()

    def add(self, method: Callable[[], Iterable[Reading]]) -> None:
        with self._lock:
            self._methods.append(weakref.WeakMethod(method))

    def remove(self, method: Callable[[], Iterable[Reading]]) -> None:
        with self._lock:
            self._methods = [ref for ref in self._methods if ref() not in (None, method)]

    def observe(self, _options: CallbackOptions) -> Iterator[Observation]:
        with self._lock:
            methods = [ref() for ref in self._methods]
        for method in methods:
            if method is None:
                continue
            try:
                readings = list(method())
            except RuntimeError:  # a dict resized by the event loop while read: skip this collection
                continue
            for value, attributes in readings:
                yield Observation(value, attributes)


queue_depth = Sources()
models_loaded = Sources()
model_memory = Sources()
breaker_state = Sources()

meter.create_observable_gauge(
    "pocketstack.queue.depth",
    callbacks=[queue_depth.observe],
    unit="{request}",
    description="Requests waiting for a loaded model (inline::llama-cpp runs one request per model at a time).",
)
meter.create_observable_gauge(
    "pocketstack.model.loaded",
    callbacks=[models_loaded.observe],
    unit="{model}",
    description="1 per model loaded in memory now (pocketstack.model: its file).",
)
meter.create_observable_gauge(
    "pocketstack.model.memory",
    callbacks=[model_memory.observe],
    unit="By",
    description="Bytes a loaded model holds: its weights (llama.cpp's model size, memory-mapped from the GGUF "
    "file) plus its KV cache at the context it was loaded with (an f16 estimate from the GGUF's dimensions).",
)
meter.create_observable_gauge(
    "pocketstack.remote.breaker.state",
    callbacks=[breaker_state.observe],
    unit="{state}",  # not "1": Prometheus' exporter would name it ..._ratio
    description="Circuit breaker of each remote provider: 0 closed, 1 half-open, 2 open.",
)
queue_wait = meter.create_histogram(
    "pocketstack.queue.wait",
    unit="s",
    description="How long a request waited for its model (loading it included) before it ran.",
    explicit_bucket_boundaries_advisory=QUEUE_WAIT_BUCKETS,
)


class FirstToken:
    """When the first token of the answer being collected came out (perf_counter; None until then)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None


# The router sets one per provider call; a provider that collects a stream into a whole answer
# (llama.cpp generates token by token either way) notes its first token in it, so a non-streamed
# answer has a time to first token too.
_first_token: ContextVar[FirstToken | None] = ContextVar("pocketstack_first_token", default=None)


def expect_first_token(slot: FirstToken) -> Any:
    """Start noting into `slot`; returns the token `stop_expecting` takes."""
    return _first_token.set(slot)


def stop_expecting(token: Any) -> None:
    _first_token.reset(token)


def note_first_token() -> None:
    slot = _first_token.get()
    if slot is not None and slot.at is None:
        slot.at = time.perf_counter()
