"""Sampling settings of a request, with llama.cpp server's defaults where it leaves them unset.

Unset parameters take llama.cpp server's defaults, not OpenAI's (temperature 1, no truncation),
which make small models ramble. The models' metadata states them (`sampling_defaults`), so a
client can tell what it gets before asking, as Llama Stack's clients get their provider's.
"""

from __future__ import annotations

import random
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError
from pocketstack.providers.inline.llama_cpp.generation import Sampling
from pocketstack.wire.fields import given, plain

DEFAULT_TEMPERATURE, DEFAULT_TOP_P, DEFAULT_TOP_K, DEFAULT_MIN_P = 0.8, 0.95, 40, 0.05
SAMPLING_DEFAULTS = {
    "temperature": DEFAULT_TEMPERATURE,
    "top_p": DEFAULT_TOP_P,
    "top_k": DEFAULT_TOP_K,
    "min_p": DEFAULT_MIN_P,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def stops_of(value: Any) -> list[str]:
    stop = plain(given(value, []))
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def sampling_of(request: models.ChatCompletionRequest | models.CompletionRequest, n_vocab: int) -> Sampling:
    bias: dict[int, float] = {}
    for key, value in given(request.logit_bias, {}).items():
        if not (key.isascii() and key.isdigit()) or int(key) >= n_vocab:
            raise BadRequestError(
                f"logit_bias names token {key!r}, not a token id below {n_vocab}.", param="logit_bias"
            )
        bias[int(key)] = float(plain(value))
    extra = request.model_extra or {}
    try:  # llama.cpp's own knobs, sent as extra fields (the SDKs' extra_body), as its server accepts them
        top_k, min_p = int(extra.get("top_k", DEFAULT_TOP_K)), float(extra.get("min_p", DEFAULT_MIN_P))
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequestError(f"top_k and min_p must be numbers: {exc}", param="top_k") from exc
    # Unset parameters take llama.cpp server's defaults, not OpenAI's (temperature 1, no
    # truncation), which make small models ramble.
    return Sampling(
        temperature=given(request.temperature, DEFAULT_TEMPERATURE),
        top_p=given(request.top_p, DEFAULT_TOP_P),
        top_k=top_k,
        min_p=min_p,
        presence_penalty=given(request.presence_penalty, 0.0),
        frequency_penalty=given(request.frequency_penalty, 0.0),
        seed=given(request.seed, random.getrandbits(31)),
        logit_bias=bias,
    )
