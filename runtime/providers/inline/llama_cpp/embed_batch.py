"""Concurrent embedding requests to one model, decoded together.

Each request's texts are tokenized and checked when it arrives (a too-long input is refused before
anything is computed), then wait as sequences. One decode at a time runs on the model's call
thread (`Resident.run`): it takes up to `SEQUENCES_PER_DECODE` waiting sequences, round robin over
the waiting requests, interactive ones before background ones, and decodes them in one
`llama_decode` batch with a sequence id each. A search's one query therefore waits for at most
the decode already running, not for an ingestion's whole request of 64 chunks, and a request that
comes while a decode runs joins the next one instead of queueing behind every earlier request.
Within a decode llama.cpp masks each sequence to its own tokens, so a text's vector does not
depend on what it was decoded with (equal to one-at-a-time to float rounding;
tests/functional/test_embedding_batches.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pocketstack.providers.inline.llama_cpp.vectors import embed_sequences, embedding_tokens

T = TypeVar("T")

# llama.cpp embeds the sequences of one decode with a mask over all their tokens, so a decode's cost
# grows with the square of its tokens: measured with all-MiniLM-L6-v2 on short sentences, 8 per
# decode is 5.1 ms a text, 64 per decode 9.2 ms, one at a time 6.8 ms.
SEQUENCES_PER_DECODE = 8
TOKENIZE_ON_LOOP_CHARS = 2048  # longer requests are tokenized on a worker thread, off the event loop


@dataclass(eq=False)
class _Request:
    tokens: list[list[int]]
    background: bool
    done: asyncio.Future[list[list[float]]]
    vectors: list[list[float] | None] = field(default_factory=list)
    next: int = 0  # the first of its sequences not yet taken into a decode
    left: int = 0  # its sequences not yet embedded

    def __post_init__(self) -> None:
        self.vectors = [None] * len(self.tokens)
        self.left = len(self.tokens)


class EmbeddingBatcher:
    """The decode loop of one embedding model (kept as its Resident's `scheduler`)."""

    def __init__(self, llm: Any, run: Callable[..., Awaitable[Any]]) -> None:
        self._llm = llm
        self._run = run  # the model's call thread: every llama.cpp call on this model goes through it
        self._waiting: dict[bool, deque[_Request]] = {False: deque(), True: deque()}  # by background
        self._loop: asyncio.Task[None] | None = None
        self.decodes = 0  # decodes run, and requests they served (tests read both: were they grouped?)
        self.largest_group = 0

    async def embed(
        self, inputs: Sequence[str | list[int]], *, background: bool = False
    ) -> tuple[list[list[float]], int]:
        """The inputs' normalized vectors and their token count."""
        if sum(len(i) for i in inputs) <= TOKENIZE_ON_LOOP_CHARS:
            sequences = embedding_tokens(self._llm, inputs)
        else:
            sequences = await asyncio.to_thread(embedding_tokens, self._llm, inputs)
        if not sequences:
            return [], 0
        request = _Request(sequences, background, asyncio.get_running_loop().create_future())
        self._waiting[background].append(request)
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._decode_waiting())
        try:
            vectors = await asyncio.shield(request.done)
        except asyncio.CancelledError:
            request.done.cancel()  # its sequences not yet taken are dropped by the next decode
            raise
        return vectors, sum(len(tokens) for tokens in sequences)

    def _take(self) -> list[tuple[_Request, int]]:
        """The next decode's sequences: round robin over the waiting requests, interactive first, up to
        SEQUENCES_PER_DECODE and the model's batch of tokens."""
        taken: list[tuple[_Request, int]] = []
        budget = self._llm.n_batch
        for background in (False, True):
            queue = self._waiting[background]
            while queue and len(taken) < SEQUENCES_PER_DECODE:
                request = queue.popleft()
                if request.done.done():  # cancelled, or failed with an earlier decode
                    continue
                size = len(request.tokens[request.next])
                if size > budget:
                    queue.appendleft(request)  # the next decode takes it
                    return taken
                budget -= size
                taken.append((request, request.next))
                request.next += 1
                if request.next < len(request.tokens):
                    queue.append(request)  # behind the others: one sequence per request per turn
        return taken

    async def _decode_waiting(self) -> None:
        while taken := self._take():
            try:
                vectors = await self._run(embed_sequences, self._llm, [r.tokens[i] for r, i in taken])
            except Exception as exc:  # a failed decode fails the requests it served; the others go on
                for request in {r for r, _ in taken}:
                    if not request.done.done():
                        request.done.set_exception(exc)
                continue
            self.decodes += 1
            self.largest_group = max(self.largest_group, len({r for r, _ in taken}))
            for (request, index), vector in zip(taken, vectors, strict=True):
                request.vectors[index] = vector
                request.left -= 1
                if request.left == 0 and not request.done.done():
                    request.done.set_result([v for v in request.vectors if v is not None])

    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def close(self) -> None:
        """Called on the model's thread as it unloads (Resident.close): no decode runs then; waiters fail."""
        for request in itertools.chain(*self._waiting.values()):
            if not request.done.done():
                request.done.get_loop().call_soon_threadsafe(_fail, request.done)


def _fail(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(RuntimeError("the embedding model was unloaded"))
