"""Embeddings and reranking on a loaded llama.cpp model (run on the model's own thread)."""

from __future__ import annotations

from collections.abc import Sequence
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


def embedding_tokens(llm: Any, inputs: Sequence[str | list[int]]) -> list[list[int]]:
    """Each input as embed() would tokenize it (token-id inputs are read back as text, as before);
    BadRequestError names the first input that does not fit the context."""
    for tokens in inputs:
        if not isinstance(tokens, str):
            check_token_ids(tokens, llm.n_vocab(), "input")
    texts = [i if isinstance(i, str) else llm.detokenize(i).decode("utf-8", errors="replace") for i in inputs]
    n_ctx = min(llm.n_ctx(), llm.n_batch)
    sequences = []
    for index, text in enumerate(texts):
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if len(tokens) > n_ctx:
            raise BadRequestError(
                f"Input {index} has {len(tokens)} tokens; this model's maximum context length is {n_ctx} tokens.",
                code="context_length_exceeded",
                param="input",
            )
        sequences.append(tokens)
    return sequences


def embed_sequences(llm: Any, sequences: list[list[int]]) -> list[list[float]]:
    """One normalized vector per sequence, the sequences decoded together (the calls Llama.embed makes,
    with one sequence id each; `sequences` fit the batch: the batcher sized them)."""
    import llama_cpp
    import numpy as np

    n_embd = llm.n_embd()
    ctx = llm._ctx.ctx
    llm._batch.reset()
    try:
        for seq_id, tokens in enumerate(sequences):
            llm._batch.add_sequence(tokens, seq_id, True)  # every token an output: embed() does the same
        llm._ctx.kv_cache_clear()
        llm._ctx.decode(llm._batch)
        vectors = np.empty((len(sequences), n_embd), dtype=np.float32)
        for seq_id in range(len(sequences)):
            pointer = llama_cpp.llama_get_embeddings_seq(ctx, seq_id)
            vectors[seq_id] = np.ctypeslib.as_array(pointer, shape=(n_embd,))
    finally:
        llm._batch.reset()
        llm._ctx.kv_cache_clear()
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
    normalized = vectors / np.where(norms == 0, 1, norms)  # embed(normalize=True): a zero vector stays zero
    return [row.tolist() for row in normalized]
