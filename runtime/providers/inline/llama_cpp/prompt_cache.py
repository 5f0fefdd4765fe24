"""Prompt-state reuse: a conversation's next turn evaluates only what its history does not already hold.

llama.cpp keeps one live context per model; besides it, the states of recent conversations are
saved (bounded in bytes, least recently used evicted) so interleaved conversations each find theirs.

Reuse must not change answers (a seeded request gives the same tokens with or without it), and
llama.cpp's logits are not the same in the last bits for a token evaluated alone as for one
evaluated in a batch. Measured on CPU (SmolLM2, Q4_1): splitting a prompt into batches of two or
more tokens, anywhere, changes nothing; a token decoded alone sometimes does (up to 0.6 in a
logit). So a lone token is never evaluated where a full evaluation would have batched it: the
prompt's last two tokens go into the sampler's first batch together, and after an answer its
tokens (decoded one by one) are evaluated again as one batch ("settling") while the model is
still held, which is what lets the next turn reuse the answer too. The bench
(`bench/agents.py`) measures the gain; the tests check the seeded answers stay the same.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


@dataclass
class PromptCache:
    """The live context's reusable tokens, and saved states of other conversations (LRU by bytes)."""

    capacity_bytes: int
    live: tuple[int, ...] = ()  # the tokens whose state the context holds, all batch-evaluated
    saved: OrderedDict[tuple[int, ...], bytes] = field(default_factory=OrderedDict)

    @property
    def saved_bytes(self) -> int:
        return sum(len(state) for state in self.saved.values())

    def prefill(self, llm: Any, tokens: list[int]) -> int:
        """Bring the context to all but the prompt's last two tokens, reusing what it (or a saved state)
        holds; how many were reused. The last two are evaluated with the first sampled token, together,
        as a full evaluation does it (never a lone token)."""
        reused = common_prefix(self.live, tokens)
        best = max(self.saved, key=lambda key: common_prefix(key, tokens), default=None)
        if best is not None and common_prefix(best, tokens) > reused:
            self.saved.move_to_end(best)
            _load(llm, best, self.saved[best])
            self.live = best
            reused = common_prefix(best, tokens)
        target = len(tokens) - 2
        reused = min(reused, target)
        if target - reused == 1:
            reused -= 1  # evaluate two, not one
        if reused <= 0:
            llm.reset()  # nothing to reuse: the sampler's loop evaluates the whole prompt at once
            self.live = ()
            return 0
        llm._ctx.kv_cache_seq_rm(-1, reused, -1)
        llm.n_tokens = reused
        if reused < target:
            llm.eval(tokens[reused:target])
        self.live = tuple(tokens[:target])
        return reused

    def settle(self, llm: Any, prompt: list[int], generated: list[int]) -> None:
        """Evaluate the answer again as one batch (with the prompt's last token), so the next turn can
        reuse it, and save the state."""
        held = len(prompt) - 1
        llm._ctx.kv_cache_seq_rm(-1, held, -1)
        llm.n_tokens = held
        if generated:
            llm.eval([prompt[-1], *generated])
        self.live = tuple(prompt[:held] if not generated else prompt + generated)
        self._save(llm)

    def forget(self) -> None:
        """The context was used without the cache: it no longer holds `live`."""
        self.live = ()

    def _save(self, llm: Any) -> None:
        if self.capacity_bytes <= 0 or not self.live:
            return
        state = _state(llm)
        if len(state) > self.capacity_bytes:
            return
        # A saved state that is a prefix of this one is superseded by it.
        for key in [k for k in self.saved if common_prefix(k, self.live) == len(k)]:
            del self.saved[key]
        self.saved[self.live] = state
        while self.saved_bytes > self.capacity_bytes:
            self.saved.popitem(last=False)


def _state(llm: Any) -> bytes:
    """The context's sequence state (its KV cells), without llama-cpp-python's logits copy."""
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, buffer, size, 0)
    return bytes(buffer[:written])


def _load(llm: Any, tokens: tuple[int, ...], state: bytes) -> None:
    import llama_cpp

    llm._ctx.kv_cache_clear()
    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state), 0) != len(state):
        raise RuntimeError("llama.cpp refused a saved prompt state")
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
