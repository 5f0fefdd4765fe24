"""Embeddings and reranking on a loaded llama.cpp model (run on the model's own thread)."""

from __future__ import annotations

from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import TokenCounts
from pocketstack.wire.fields import plain


def check_token_ids(tokens: list[int], n_vocab: int, param: str) -> None:
    """llama.cpp aborts the whole process on an unknown token id; refuse it here."""
    bad = [t for t in tokens if not 0 <= t < n_vocab]
    if bad:
        raise BadRequestError(f"Token ids must be 0 to {n_vocab - 1}; got {bad[:5]}.", param=param)


def rerank_text(value: Any) -> str:
    text = plain(value)
    return text if isinstance(text, str) else text.text


def rank(llm: Any, query: str, items: list[str]) -> list[float]:
    """One relevance score per item, as llama.cpp's server builds the pair: BOS q EOS SEP d EOS."""
    import llama_cpp

    if llm.pooling_type() != llama_cpp.LLAMA_POOLING_TYPE_RANK:
        raise BadRequestError("This model is not a reranker (its GGUF has no rank pooling).", param="model")
    vocab = llm._model.vocab
    eos = llama_cpp.llama_vocab_eos(vocab)
    sep = llama_cpp.llama_vocab_sep(vocab)
    eos = sep if eos == llama_cpp.LLAMA_TOKEN_NULL else eos
    add_bos, add_eos = llama_cpp.llama_vocab_get_add_bos(vocab), llama_cpp.llama_vocab_get_add_eos(vocab)
    add_sep = llama_cpp.llama_vocab_get_add_sep(vocab)
    query_tokens = llm.tokenize(query.encode("utf-8"), add_bos=False, special=False)
    scores = []
    try:
        for index, item in enumerate(items):
            tokens = [llama_cpp.llama_vocab_bos(vocab)] if add_bos else []
            tokens += query_tokens + ([eos] if add_eos else []) + ([sep] if add_sep else [])
            tokens += llm.tokenize(item.encode("utf-8"), add_bos=False, special=False) + ([eos] if add_eos else [])
            if len(tokens) > llm.n_ctx():
                raise BadRequestError(
                    f"Query and item {index} have {len(tokens)} tokens; the context is {llm.n_ctx()}.",
                    code="context_length_exceeded",
                    param="items",
                )
            # The same calls Llama.embed makes; embed() cannot take a token pair.
            llm._batch.reset()
            llm._batch.add_sequence(tokens, 0, True)
            llm._ctx.kv_cache_clear()
            llm._ctx.decode(llm._batch)
            scores.append(float(llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)[0]))
    finally:
        llm._batch.reset()
        llm._ctx.kv_cache_clear()
        llm.reset()
    return scores


def count_tokens(llm: Any, texts: list[str]) -> TokenCounts:
    special = len(llm.tokenize(b"", add_bos=True, special=False))  # what embed() adds to every input
    counts = [len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) for text in texts]
    return TokenCounts(counts=counts, context_length=int(llm.n_ctx()), special_tokens=special)


# llama.cpp embeds the sequences of one decode with a mask over all their tokens, so a decode's cost
# grows with the square of its tokens: measured with all-MiniLM-L6-v2 on short sentences, 8 per
# decode is 5.1 ms a text, 64 per decode 9.2 ms, one at a time 6.8 ms.
SEQUENCES_PER_DECODE = 8


def embed(llm: Any, inputs: list[str | list[int]]) -> tuple[list[list[float]], int]:
    for tokens in inputs:
        if not isinstance(tokens, str):
            check_token_ids(tokens, llm.n_vocab(), "input")
    texts = [i if isinstance(i, str) else llm.detokenize(i).decode("utf-8", errors="replace") for i in inputs]
    n_ctx = llm.n_ctx()
    for index, text in enumerate(texts):
        count = len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        if count > n_ctx:
            raise BadRequestError(
                f"Input {index} has {count} tokens; this model's maximum context length is {n_ctx} tokens.",
                code="context_length_exceeded",
                param="input",
            )
    vectors: list[list[float]] = []
    total = 0
    for start in range(0, len(texts), SEQUENCES_PER_DECODE):
        part, count = llm.embed(
            texts[start : start + SEQUENCES_PER_DECODE], normalize=True, truncate=False, return_count=True
        )
        vectors += part
        total += int(count)
    return vectors, total
