"""The token loop: sampling through llama.cpp, incremental UTF-8, stop sequences, logprobs.

It runs in a worker thread with the model's lock held, emits text pieces as they become final,
and checks the cancel flag after every token so a client that leaves stops generation at once.
"""

from __future__ import annotations

import codecs
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy loads with llama_cpp, on first use, not at server start
    import numpy as np

    from pocketstack.providers.inline.llama_cpp.prompt_cache import PromptCache

FinishReason = str  # "stop" | "length" | "cancelled"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]]


@dataclass(frozen=True)
class Piece:
    """Final text (never split inside a character or a possible stop sequence) plus its tokens' logprobs."""

    text: str
    logprobs: list[TokenLogprob]


@dataclass
class Outcome:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose state was reused, not evaluated again


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters could still grow into a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest


class Answer:
    """One answer's text as its tokens come: incremental UTF-8, stop sequences, logprobs, the token limit.
    Shared by the one-at-a-time loop (`generate`) and the batched one (scheduler.py), so both end
    answers alike."""

    def __init__(
        self,
        llm: Any,
        max_tokens: int,
        stops: Sequence[str],
        top_logprobs: int | None,
        end_logprob: bool,
        emit: Callable[[Piece], None],
    ) -> None:
        import llama_cpp

        self._llm, self._vocab, self._is_eog = llm, llm._model.vocab, llama_cpp.llama_vocab_is_eog
        self._max_tokens, self._stops, self._top, self._end_logprob = max_tokens, stops, top_logprobs, end_logprob
        self._emit = emit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.generated: list[int] = []
        self.finish: FinishReason = "length"
        self._text = ""
        self._logprobs: list[TokenLogprob] = []

    def add(self, token: int, logits: np.ndarray[Any, Any] | None) -> bool:
        """Take a sampled token (`logits`: its step's scores, for logprobs); True when the answer has ended."""
        llm, top = self._llm, self._top
        if self._is_eog(self._vocab, token):
            self.finish = "stop"
            if self._end_logprob and top is not None and logits is not None:
                end = llm.detokenize([token], special=True)
                self._logprobs.append(_logprob(llm, logits, token, end, top))
            return True
        piece = llm.detokenize([token])
        self.generated.append(token)
        self._text += self._decoder.decode(piece)
        if top is not None and logits is not None:
            self._logprobs.append(_logprob(llm, logits, token, piece, top))
        stops = self._stops
        hit = min((i for i in (self._text.find(s) for s in stops) if i >= 0), default=-1) if stops else -1
        if hit >= 0:
            self._emit(Piece(self._text[:hit], self._logprobs))
            self._text, self._logprobs = "", []
            self.finish = "stop"
            return True
        keep = _held_back(self._text, stops)
        ready = self._text[: len(self._text) - keep] if keep else self._text
        if ready:
            self._emit(Piece(ready, self._logprobs))
            self._text, self._logprobs = self._text[len(ready) :], []
        return len(self.generated) >= self._max_tokens

    def close(self) -> None:
        """Send what is held back (bytes of a character cut off by max_tokens are dropped, not sent as U+FFFD)."""
        if self._text or self._logprobs:
            self._emit(Piece(self._text, self._logprobs))
            self._text, self._logprobs = "", []


def generate(
    llm: Any,
    prompt_tokens: list[int],
    *,
    max_tokens: int,
    sampling: Sampling,
    stops: Sequence[str],
    grammar: Any,
    top_logprobs: int | None,
    emit: Callable[[Piece], None],
    cancelled: threading.Event,
    cache: PromptCache | None = None,
    reuse: bool = True,
    end_logprob: bool = False,
) -> Outcome:
    """Generate up to `max_tokens` after `prompt_tokens`; `top_logprobs` None means no logprobs.
    `end_logprob`: the end-of-generation token that stops the answer has its logprob too (its text, as
    <|im_end|>, is not part of the answer's), as text completions report every sampled token (vLLM).

    With `cache` and `reuse`, the prompt reuses the state the context (or the cache) holds; else the
    whole prompt is evaluated again (the request asked for `cache_prompt: false`)."""
    captured: list[np.ndarray[Any, Any]] = []

    def processor(_ids: Any, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        for token_id, bias in sampling.logit_bias.items():
            scores[token_id] += bias
        if top_logprobs is not None:
            captured[:] = [scores.copy()]  # only the step being sampled is needed
        return scores

    if sampling.seed is not None:
        llm.set_seed(sampling.seed)
    if cache is not None and reuse:
        cached = cache.prefill(llm, prompt_tokens)
    else:
        if cache is not None:
            cache.release(llm)
        llm.reset()
        cached = 0
    greedy = sampling.temperature <= 0.0
    tokens = llm.generate(
        prompt_tokens,
        temp=0.0 if greedy else sampling.temperature,
        top_k=1 if greedy else sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        repeat_penalty=1.0,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        logits_processor=[processor] if (sampling.logit_bias or top_logprobs is not None) else None,
        grammar=grammar,
        reset=True,
    )
    answer = Answer(llm, max_tokens, stops, top_logprobs, end_logprob, emit)
    evaluated = False  # the prompt's last tokens, evaluated with the first sample
    for token in tokens:
        evaluated = True
        if cancelled.is_set():
            answer.finish = "cancelled"
            break
        if answer.add(token, captured[-1] if captured else None):
            break
    answer.close()
    tokens.close()
    if cache is not None and reuse and evaluated:
        cache.keep_prompt(llm, prompt_tokens)  # no evaluation: the answer ends with its last token
    return Outcome(answer.finish, len(prompt_tokens), len(answer.generated), cached)


def _logprob(llm: Any, logits: np.ndarray[Any, Any], token: int, piece: bytes, top: int) -> TokenLogprob:
    import numpy as np

    shifted = logits - logits.max()
    logsumexp = math.log(float(np.exp(shifted).sum()))
    logprobs = shifted - logsumexp
    best: list[tuple[str, float, list[int]]] = []
    if top > 0:
        for candidate in np.argpartition(-logprobs, top)[:top]:
            raw = llm.detokenize([int(candidate)])
            best.append((raw.decode("utf-8", errors="replace"), float(logprobs[candidate]), list(raw)))
        best.sort(key=lambda item: -item[1])
    return TokenLogprob(piece.decode("utf-8", errors="replace"), float(logprobs[token]), list(piece), best)
