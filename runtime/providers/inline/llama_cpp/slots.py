"""The slots of a batched chat model (scheduler.py): what each slot's sequence holds, and saved states.

As prompt_cache.py does for the one live context, per slot: a slot keeps the batch-evaluated prompt
of its last answer (never the answer's own tokens, decoded one by one), and a conversation's next
turn takes the free slot that shares the longest prefix with it, so only the rest is evaluated.
A slot about to be given another prompt first saves its state (bounded in bytes, least recently
used evicted), and a request whose prompt a saved state shares more of loads it into its slot.
Used from the scheduler's loop thread only.
"""

from __future__ import annotations

import ctypes
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from pocketstack.providers.inline.llama_cpp.prompt_cache import common_prefix


class Slots:
    def __init__(self, llm: Any, count: int, capacity_bytes: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._ctx = llm._ctx.ctx
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.capacity_bytes = capacity_bytes
        self.live: list[tuple[int, ...]] = [()] * count  # what each slot's sequence holds
        self._busy = [False] * count
        self._unsaved = [False] * count  # the live state is not among the saved ones yet
        self._used = [0] * count  # when each was last freed, for least recently used
        self._clock = itertools.count(1)
        self.saved: OrderedDict[tuple[int, ...], bytes] = OrderedDict()

    @property
    def count(self) -> int:
        return len(self.live)

    def is_free(self, slot: int) -> bool:
        return not self._busy[slot]

    def take(self, slot: int) -> None:
        self._busy[slot] = True

    def choose(self, tokens: Sequence[int], avoid_zero: bool = False) -> int | None:
        """The free slot sharing the longest prefix with `tokens`; among equals the least recently used
        (other conversations' states stay live longer). None when every slot is busy."""
        free = [s for s in range(self.count) if not self._busy[s] and not (avoid_zero and s == 0)]
        if not free:
            return None
        return max(free, key=lambda s: (common_prefix(self.live[s], tokens), -self._used[s]))

    def prefill(self, slot: int, tokens: list[int], reuse: bool) -> int:
        """Bring the slot to a prefix of `tokens` it (or a saved state) holds; how many tokens that is.
        At least the prompt's last two are left to evaluate (never a lone token, prompt_cache.py)."""
        live = self.live[slot]
        reused = common_prefix(live, tokens) if reuse else 0
        if reused < len(live):
            self._save(slot)  # the slot's conversation leaves it: keep its state for its next turn
        if reuse:
            best = max(self.saved, key=lambda key: common_prefix(key, tokens), default=None)
            if best is not None and common_prefix(best, tokens) > reused:
                self.saved.move_to_end(best)
                self._load(slot, self.saved[best])
                self.live[slot], self._unsaved[slot] = best, False
                reused = common_prefix(best, tokens)
        reused = max(0, min(reused, len(tokens) - 2))
        self._lib.llama_memory_seq_rm(self._memory, slot, reused, -1)
        self.live[slot] = tuple(tokens[:reused])
        return reused

    def free(self, slot: int, keep: Sequence[int]) -> None:
        """The slot's work is over; its sequence keeps `keep` (a prefix of what it holds), the rest goes."""
        self._lib.llama_memory_seq_rm(self._memory, slot, len(keep), -1)
        self.live[slot] = tuple(keep)
        self._unsaved[slot] = bool(keep)
        self._busy[slot] = False
        self._used[slot] = next(self._clock)

    def _save(self, slot: int) -> None:
        live = self.live[slot]
        if not self._unsaved[slot]:
            return
        self._unsaved[slot] = False
        if self.capacity_bytes <= 0 or not live:
            return
        state = self._state(slot)
        if len(state) > self.capacity_bytes:
            return
        for key in [k for k in self.saved if common_prefix(k, live) == len(k)]:
            del self.saved[key]  # a saved prefix of this state is superseded by it
        self.saved[live] = state
        while sum(len(s) for s in self.saved.values()) > self.capacity_bytes:
            self.saved.popitem(last=False)

    def _state(self, slot: int) -> bytes:
        size = self._lib.llama_state_seq_get_size(self._ctx, slot)
        buffer = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self._ctx, buffer, size, slot)
        return ctypes.string_at(buffer, written)

    def _load(self, slot: int, state: bytes) -> None:
        self._lib.llama_memory_seq_rm(self._memory, slot, -1, -1)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if self._lib.llama_state_seq_set_data(self._ctx, buffer, len(state), slot) != len(state):
            raise RuntimeError("llama.cpp refused a saved prompt state")
