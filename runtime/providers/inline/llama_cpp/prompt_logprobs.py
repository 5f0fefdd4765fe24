"""Prompt logprobs for `/v1/completions` with `echo` and `logprobs`: what each prompt token's logprob is
given the tokens before it (OpenAI's legacy completions format; lm-evaluation-harness scores multiple
choice this way).

The prompt is evaluated afresh with logits for every position, a few dozen positions per batch: the
log-softmax of a batch's rows is reduced at once to what is returned (the token's logprob and the
top few), so memory holds one batch's logits, never the prompt's (n_tokens x n_vocab floats). llama.cpp
keeps its output buffer at the largest batch of logits it was asked for, so batches are sized to
LOGITS_BYTES. No batch is a lone token: split into batches of two or more tokens a prompt's logits
are the same as evaluated at once (see prompt_cache.py), and the context then holds the prompt as a
full evaluation leaves it, for the sampler to continue from and the next request to reuse.
Only requests that ask for prompt logprobs come here; the normal path never computes them.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any

from pocketstack._generated import models

if TYPE_CHECKING:  # numpy loads with llama_cpp, on first use, not at server start
    import numpy as np

    from pocketstack.providers.inline.llama_cpp.prompt_cache import PromptCache

LOGITS_BYTES = 16 * 1024 * 1024  # one batch's logits (float32): 85 positions of SmolLM2's 49,152-token vocab


def batches(count: int, size: int) -> list[tuple[int, int]]:
    """[start, end) spans of at most `size` (>= 2) covering `count` positions, none of one alone (unless count is 1)."""
    spans = [(start, min(start + size, count)) for start in range(0, count, size)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:
        (a, _), (_, end) = spans[-2], spans[-1]
        spans[-2:] = [(a, end - 2), (end - 2, end)]
    return spans


def token_text(llm: Any, token: int) -> bytes:
    """A token as it reads in text: special tokens (<|im_end|>) by their name, not dropped."""
    return bytes(llm.detokenize([token], special=True))


def evaluate(
    llm: Any, tokens: list[int], top: int, cache: PromptCache | None, skip_first_text: bool = False
) -> models.CompletionLogprobs:
    """Evaluate `tokens` from an empty context and return their logprobs (the first one's null). The
    context then holds them (and `cache` knows it). `skip_first_text`: the first token is a BOS the
    tokenizer added, which the echoed text does not contain (its text_offset does not advance)."""
    import numpy as np

    if cache is not None:
        cache.release(llm)  # keeps the live conversation's state for its next turn
    llm.reset()
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    n_vocab = llm.n_vocab()
    size = max(2, min(llm.n_batch, LOGITS_BYTES // (4 * n_vocab)))
    chosen: list[float | None] = [None] if tokens else []  # nothing comes before the first token
    best: list[dict[str, float] | None] = [None] if tokens else []
    for start, end in batches(len(tokens), size):
        llm._batch.set_batch(batch=tokens[start:end], n_past=start, logits_all=True)
        llm._ctx.decode(llm._batch)
        following = tokens[start + 1 : end + 1]  # row i of this batch predicts the token after position start+i
        if not following:
            continue
        rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(end - start, n_vocab))[: len(following)]
        logprobs = _log_softmax(rows)
        chosen.extend(float(v) for v in logprobs[np.arange(len(following)), following])
        best.extend(_top(llm, row, top) for row in logprobs)
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    if cache is not None:
        cache.adopt(tokens)
    texts = [token_text(llm, token) for token in tokens]
    return models.CompletionLogprobs(
        tokens=[text.decode("utf-8", errors="replace") for text in texts],
        token_logprobs=chosen,
        top_logprobs=best,
        text_offset=text_offsets(texts[1:] if skip_first_text else texts, leading=1 if skip_first_text else 0),
    )


def text_offsets(pieces: list[bytes], leading: int = 0) -> list[int]:
    """Where each token starts in the decoded text, in characters (a token that ends inside a character
    starts where that character does); `leading` tokens that add no text first, at 0."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offsets, length = [0] * leading, 0
    for piece in pieces:
        offsets.append(length)
        length += len(decoder.decode(piece))
    return offsets


def _log_softmax(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    shifted = rows - rows.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # type: ignore[no-any-return]


def _top(llm: Any, logprobs: np.ndarray[Any, Any], top: int) -> dict[str, float]:
    import numpy as np

    if top <= 0:
        return {}
    found: dict[str, float] = {}
    candidates = [np.argmax(logprobs)] if top == 1 else np.argpartition(-logprobs, top)[:top]
    for candidate in sorted(candidates, key=lambda c: -logprobs[c]):
        text = token_text(llm, int(candidate)).decode("utf-8", errors="replace")
        found.setdefault(text, float(logprobs[candidate]))  # two tokens of one text: the likelier one's
    return found
