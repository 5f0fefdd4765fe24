"""Prompt-state reuse: a conversation's next turn evaluates only what its history does not already hold.

llama.cpp keeps one live context per model; besides it, the states of recent conversations are
saved (bounded in bytes, least recently used evicted) so interleaved conversations each find theirs.

Reuse must not change answers (a seeded request gives the same tokens with or without it), and
llama.cpp's logits are not the same in the last bits for a token evaluated alone as for one
evaluated in a batch. Measured on CPU (SmolLM2, Q4_1): splitting a prompt into batches of two or
more tokens, anywhere, changes nothing; a token decoded alone sometimes does (up to 0.6 in a
logit). So a lone token is never evaluated where a full evaluation would have batched it: the
prompt's last two tokens go into the sampler's first batch together, and an answer's tokens
(decoded one by one) are dropped from the context when it ends, so the next turn evaluates them
in its batched prompt. Evaluating them again as a batch right away ("settling") kept the client
waiting ~0.9 s after its last token (128 tokens, 2 cores); done with the next turn they cost that
turn a part of one batch. The live state is copied to the saved ones only when a request is about
to replace it, not after every answer. The bench (`bench/agents.py`) measures the gain; the tests
check the seeded answers stay the same.
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
    unsaved: bool = False  # the live state is not among the saved ones yet

    @property
    def saved_bytes(self) -> int:
        return sum(len(state) for state in self.saved.values())

    def prefill(self, llm: Any, tokens: list[int]) -> int:
        """Bring the context to all but the prompt's last two tokens, reusing what it (or a saved state)
        holds; how many were reused. The last two are evaluated with the first sampled token, together,
        as a full evaluation does it (never a lone token)."""
        reused = common_prefix(self.live, tokens)
        if reused < len(self.live):
            self._save(llm)  # this prompt leaves the live conversation: keep its state for its next turn
        best = max(self.saved, key=lambda key: common_prefix(key, tokens), default=None)
        if best is not None and common_prefix(best, tokens) > reused:
            self._save(llm)
            self.saved.move_to_end(best)
            _load(llm, best, self.saved[best])
            self.live, self.unsaved = best, False
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
        self.unsaved = True
        return reused

    def keep_prompt(self, llm: Any, prompt: list[int]) -> None:
        """After an answer: keep the prompt (evaluated in batches), drop the answer's tokens (decoded one
        by one). Nothing is evaluated here, so the answer ends with its last token; the next turn
        evaluates the answer in its batched prompt."""
        llm._ctx.kv_cache_seq_rm(-1, len(prompt), -1)
        llm.n_tokens = len(prompt)
        self.live = tuple(prompt)
        self.unsaved = True

    def adopt(self, tokens: list[int]) -> None:
        """The context was evaluated afresh with `tokens` in batches (prompt_logprobs.py): they are the live state."""
        self.live = tuple(tokens)
        self.unsaved = True

    def release(self, llm: Any) -> None:
        """Before the context is used without the cache: keep the live state among the saved ones."""
        self._save(llm)
        self.live = ()

    def _save(self, llm: Any) -> None:
        if not self.unsaved:
            return
        self.unsaved = False
        if self.capacity_bytes <= 0 or not self.live:
            return
        llm._ctx.kv_cache_seq_rm(-1, len(self.live), -1)  # the state is `live`'s, not what followed it
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
    return ctypes.string_at(buffer, written)  # one copy; bytes(buffer[:n]) went through a list (~0.4 s for 6 MB)


def _load(llm: Any, tokens: tuple[int, ...], state: bytes) -> None:
    import llama_cpp

    llm._ctx.kv_cache_clear()
    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state), 0) != len(state):
        raise RuntimeError("llama.cpp refused a saved prompt state")
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
