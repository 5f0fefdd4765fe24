"""The exact scan's matrix product, concurrent searches of a store grouped into one.

A scan reads the whole matrix (50,000 x 384 float32: 77 MB) for one query's 50,000 dot products:
it is bound by memory bandwidth, so 8 queries multiplied at once cost little more than one. The
product runs on a worker thread (BLAS releases the GIL), keeping the event loop free; searches
that arrive meanwhile wait for the next product together, one per matrix. A lone search pays only
the thread hop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class GroupedProducts:
    def __init__(self) -> None:
        # By matrix (its id, while the entry holds the matrix): the queries waiting for its next product
        self._waiting: dict[int, tuple[np.ndarray, list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]]] = {}
        self._loop: asyncio.Task[None] | None = None
        self.products = 0  # products run, and the most queries one served (tests read them)
        self.largest_group = 0

    async def scores(self, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
        """vectors @ query (float32, one score per row)."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(id(vectors), (vectors, []))[1].append((query, future))
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._multiply_waiting())
        return await future

    async def _multiply_waiting(self) -> None:
        import numpy as np

        while self._waiting:
            _, (vectors, waiting) = self._waiting.popitem()
            waiting = [(query, future) for query, future in waiting if not future.done()]  # the cancelled leave
            if not waiting:
                continue
            try:
                if len(waiting) == 1:
                    rows = [await asyncio.to_thread(np.matmul, vectors, waiting[0][0])]
                else:  # queries x rows: each query's scores contiguous
                    queries = np.stack([query for query, _ in waiting])
                    rows = list(await asyncio.to_thread(np.matmul, queries, vectors.T))
            except Exception as exc:
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.products += 1
            self.largest_group = max(self.largest_group, len(waiting))
            for (_, future), row in zip(waiting, rows, strict=True):
                if not future.done():
                    future.set_result(row)
