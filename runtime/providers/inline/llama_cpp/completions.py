"""Text completions' parts (/v1/completions): the prompts of a request, their tokens, and the chunks of
its choices with OpenAI's legacy logprobs (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`).

A list of prompts answers `n` choices per prompt, prompt i's at indexes i*n to i*n+n-1 (OpenAI's
order). `echo` starts each choice with its prompt; with `logprobs` too, the prompt's tokens come with
their logprobs (prompt_logprobs.py), the first one's null, and `max_tokens: 0` answers with the prompt
alone, as OpenAI and vLLM do (lm-evaluation-harness's loglikelihood requests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError
from pocketstack.providers.inline.llama_cpp import vectors
from pocketstack.providers.inline.llama_cpp.generation import Outcome, Piece
from pocketstack.wire.fields import given, plain


@dataclass(frozen=True)
class TextPrompt:
    tokens: list[int]
    text: str  # what `echo` gives back
    added_bos: bool = False  # the tokenizer put a BOS first that the text does not contain


def prompts_of(request: models.CompletionRequest) -> list[str | list[int]]:
    """The request's prompts (a text, texts, token ids or token-id lists), checked against what it asks."""
    if given(request.best_of, 1) != 1:
        raise BadRequestError("best_of > 1 is not supported by inline::llama-cpp.", param="best_of")
    if given(request.suffix) is not None:
        raise BadRequestError("suffix (fill-in-the-middle) is not supported by inline::llama-cpp.", param="suffix")
    if given(request.max_tokens) == 0 and not given(request.echo, False):
        raise BadRequestError(
            "max_tokens 0 generates nothing: it is for echo (the prompt back, with its logprobs when "
            "logprobs is set); ask for at least 1 token otherwise.",
            param="max_tokens",
        )
    prompt = plain(request.prompt)
    if isinstance(prompt, str) or isinstance(prompt[0], int):
        return [prompt]
    return list(prompt)


def tokenize(llm: Any, prompt: str | list[int]) -> TextPrompt:
    """A prompt's tokens (run on the model's thread): a text tokenized as llama.cpp's server does it (the
    model's BOS when it wants one, special tokens read), token ids checked and spelled out for echo."""
    if isinstance(prompt, str):
        encoded = prompt.encode("utf-8")
        tokens = llm.tokenize(encoded, True, True)
        if not tokens:  # "" for a model without a BOS token: nothing to generate from (llama_decode fails)
            raise BadRequestError("The prompt is empty: give at least one token of text.", param="prompt")
        added = len(tokens) != len(llm.tokenize(encoded, False, True))
        return TextPrompt(tokens, prompt, added)
    vectors.check_token_ids(prompt, llm.n_vocab(), "prompt")
    return TextPrompt(list(prompt), llm.detokenize(prompt, special=True).decode("utf-8", errors="replace"))


def usage(prompts: list[list[Outcome]]) -> models.Usage:
    """Each prompt counted once (as OpenAI counts `n` choices), the tokens of every choice."""
    prompt_tokens = sum(outcomes[0].prompt_tokens for outcomes in prompts)
    cached = sum(outcomes[0].cached_tokens for outcomes in prompts)
    completion_tokens = sum(o.completion_tokens for outcomes in prompts for o in outcomes)
    return models.Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=models.PromptTokensDetails(cached_tokens=cached),
    )


@dataclass
class Chunks:
    """The chunks of one completion; keeps each choice's length so far, for the next token's text_offset."""

    make: Callable[[list[models.CompletionChoice]], models.Completion]
    logprobs: int | None
    offsets: dict[int, int] = field(default_factory=dict)

    def echo(self, index: int, prompt: TextPrompt, scored: models.CompletionLogprobs | None) -> models.Completion:
        """A choice's first chunk: its prompt, with the prompt's logprobs when they were evaluated."""
        self.offsets[index] = len(prompt.text)
        return self.make([models.CompletionChoice(index=index, text=prompt.text, finish_reason=None, logprobs=scored)])

    def text(self, index: int, text: str, finish: Any = None, pieces: list[Piece] | None = None) -> models.Completion:
        offset = self.offsets.get(index, 0)
        choice = models.CompletionChoice(index=index, text=text, finish_reason=finish, logprobs=None)
        if self.logprobs is not None and pieces:
            entries = [lp for p in pieces for lp in p.logprobs]
            starts = []
            for entry in entries:
                starts.append(offset)
                offset += len(entry.token)
            choice.logprobs = models.CompletionLogprobs(
                tokens=[e.token for e in entries],
                token_logprobs=[e.logprob for e in entries],
                top_logprobs=[{t: v for t, v, _ in e.top} for e in entries],
                text_offset=starts,
            )
        else:
            offset += len(text)
        self.offsets[index] = offset
        return self.make([choice])
