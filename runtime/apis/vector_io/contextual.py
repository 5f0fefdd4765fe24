"""Contextual chunking (`chunking_strategy: {type: contextual, contextual: {...}}`, Llama Stack 0.7's
Contextual Retrieval): before a file's chunks are embedded, a chat model writes for each one a short
description that situates it in the whole document, and the chunk is stored as `<context>\\n\\n<chunk>`.

Llama Stack's settings, checks, prompt and failure rules (llama_stack_api/vector_io/models.py
VectorStoreChunkingStrategyContextualConfig; providers/utils/memory/openai_vector_store_mixin.py
_execute_contextual_chunk_transformation): the document goes in a system message (the template up to
`{{CHUNK_CONTENT}}`, so a server with prefix caching computes it once), the chunk in a user message;
temperature 0, at most 256 tokens; a call that times out or meets a 429/502/503/504 is tried again
(3 more times, 1 s, 2 s, 4 s apart). A chunk whose call fails, or whose context is empty, is stored
without one; the file fails only when every chunk failed, or every context came back empty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pocketstack._generated import models
from pocketstack.config import VectorStoresConfig
from pocketstack.errors import PocketStackError

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_PROMPT = (
    "<document>\n{{WHOLE_DOCUMENT}}\n</document>\n"
    "Here is the chunk we want to situate within the whole document\n"
    "<chunk>\n{{CHUNK_CONTENT}}\n</chunk>\n"
    "Please give a short succinct description to situate this chunk of text within the overall document "
    "for the purposes of improving search retrieval of the chunk. "
    "Answer only with the succinct description and nothing else."
)
DOCUMENT, CHUNK = "{{WHOLE_DOCUMENT}}", "{{CHUNK_CONTENT}}"
CONTEXT_MAX_TOKENS = 256  # what each call may write
RETRIES, RETRY_BASE_S = 3, 1.0
RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})
MISSING_MODEL = (
    "Failed to initialize contextual chunking: model_id is required. Provide it in chunking_strategy.contextual "
    "or configure a default in contextual_retrieval_params.model on the server (the run config's vector_stores "
    "section)."
)  # Llama Stack's words, and where our config keeps the setting

Chat = Callable[[models.ChatCompletionRequest], Awaitable[models.ChatCompletion | AsyncIterator[Any]]]


@dataclass(frozen=True)
class ContextualSettings:
    model_id: str | None = None
    context_prompt: str = DEFAULT_CONTEXT_PROMPT
    max_chunk_size_tokens: int = 700
    chunk_overlap_tokens: int = 400
    timeout_seconds: int | None = None
    max_concurrency: int | None = None

    def strategy(self) -> dict[str, Any]:
        """The strategy as stored and shown on the file: every setting, defaults filled (as Llama Stack's model)."""
        return {"type": "contextual", "contextual": dataclasses.asdict(self)}

    def model(self, config: VectorStoresConfig) -> str | None:
        default = config.contextual_retrieval_params.model
        return self.model_id or (default.identifier if default is not None else None)


def _integer(settings: dict[str, Any], key: str, low: int, high: int | None = None, *, optional: bool = False) -> Any:
    value = settings.get(key, getattr(ContextualSettings, key))
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"contextual.{key} must be an integer {bounds}")
    return value


def parse(strategy: dict[str, Any]) -> ContextualSettings:
    """The checked `contextual` settings of a strategy (ValueError says what is wrong; other keys are ignored)."""
    settings = strategy.get("contextual")
    if not isinstance(settings, dict):
        raise ValueError("a contextual strategy is {type: contextual, contextual: {model_id, ...}}")
    model_id = settings.get("model_id")
    if model_id is not None and (not isinstance(model_id, str) or not model_id):
        raise ValueError("contextual.model_id must be a model id (a non-empty string)")
    prompt = settings.get("context_prompt", DEFAULT_CONTEXT_PROMPT)
    if not isinstance(prompt, str):
        raise ValueError("contextual.context_prompt must be a string")
    size = _integer(settings, "max_chunk_size_tokens", 100, 4096)
    overlap = _integer(settings, "chunk_overlap_tokens", 0)
    if overlap >= size:
        raise ValueError("chunk_overlap_tokens must be less than max_chunk_size_tokens")
    for placeholder in (DOCUMENT, CHUNK):
        if placeholder not in prompt:
            raise ValueError(f"context_prompt must contain {placeholder} placeholder")
    if prompt.index(DOCUMENT) >= prompt.index(CHUNK):
        raise ValueError(
            "context_prompt must have {{WHOLE_DOCUMENT}} before {{CHUNK_CONTENT}} to enable prefix caching"
        )
    return ContextualSettings(
        model_id=model_id,
        context_prompt=prompt,
        max_chunk_size_tokens=size,
        chunk_overlap_tokens=overlap,
        timeout_seconds=_integer(settings, "timeout_seconds", 1, optional=True),
        max_concurrency=_integer(settings, "max_concurrency", 1, optional=True),
    )


class ContextualError(Exception):
    """The file cannot be contextualized (it becomes `failed`, this the last_error's message)."""


def check_document(document: str, config: VectorStoresConfig) -> None:
    estimate, limit = len(document) // 4, config.contextual_retrieval_params.max_document_tokens
    if estimate > limit:
        raise ContextualError(
            f"Failed to process document for contextual retrieval: size (~{estimate} tokens) exceeds maximum "
            f"allowed ({limit} tokens)"
        )


@dataclass
class Tally:
    """How a file's chunks fared so far (a file is contextualized a batch of chunks at a time)."""

    total: int = 0
    failed: int = 0
    empty: int = 0
    first_error: str | None = None

    def verdict(self, model: str) -> None:
        """Llama Stack's rule: the file fails when no chunk got a context."""
        if self.total and self.failed == self.total:
            raise ContextualError(f"Failed to contextualize any chunks for model {model}: {self.first_error}")
        if self.total and self.empty == self.total:
            raise ContextualError(
                f"Failed to generate context using model {model}: empty context for all {self.total} chunks. "
                "Verify the model supports instruction-following and the prompt template is appropriate."
            )
        if self.failed or self.empty:
            log.warning("contextual retrieval: %d of %d chunks failed, %d empty", self.failed, self.total, self.empty)


class Situator:
    """Writes the contexts of one file's chunks with one model, `max_concurrency` calls at a time."""

    def __init__(self, chat: Chat, model: str, document: str, settings: ContextualSettings, config: VectorStoresConfig):
        defaults = config.contextual_retrieval_params
        self.chat, self.model = chat, model
        template = settings.context_prompt
        split = template.index(CHUNK)
        self.system = template[:split].replace(DOCUMENT, document).rstrip()
        self.user = template[split:]
        self.timeout = settings.timeout_seconds or defaults.default_timeout_seconds
        self.limit = asyncio.Semaphore(settings.max_concurrency or defaults.default_max_concurrency)
        self.tally = Tally()

    async def contexts(self, chunks: Sequence[str]) -> list[str]:
        """Each chunk's context ("" where it failed or came back empty)."""
        self.tally.total += len(chunks)
        return list(await asyncio.gather(*(self._context(chunk) for chunk in chunks)))

    async def _context(self, chunk: str) -> str:
        request = models.ChatCompletionRequest.model_validate(
            {
                "model": self.model,
                "messages": [
                    {"role": "system", "content": self.system},
                    {"role": "user", "content": self.user.replace(CHUNK, chunk)},
                ],
                "stream": False,
                "temperature": 0.0,
                "max_tokens": CONTEXT_MAX_TOKENS,
                "store": False,  # internal calls stay out of the stored chat completions
            }
        )
        async with self.limit:
            for attempt in range(RETRIES + 1):
                try:
                    answer = await asyncio.wait_for(self.chat(request), timeout=self.timeout)
                    if not isinstance(answer, models.ChatCompletion) or not answer.choices:
                        raise PocketStackError("the model gave no choices")
                    content = answer.choices[0].message.content
                    text = (content if isinstance(content, str) else "").strip()
                    if not text:
                        self.tally.empty += 1
                    return text
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a failed chunk is stored without a context
                    status = getattr(exc, "status", None)
                    retriable = isinstance(exc, (TimeoutError, ConnectionError)) or status in RETRIABLE_STATUSES
                    if retriable and attempt < RETRIES:
                        await asyncio.sleep(RETRY_BASE_S * 2**attempt + random.uniform(0, 0.5))
                        continue
                    reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                    log.warning("contextualizing a chunk with %s failed: %s", self.model, reason)
                    self.tally.failed += 1
                    self.tally.first_error = self.tally.first_error or reason
                    return ""
        return ""  # not reached: the last attempt returns


def joined(context: str, chunk: str) -> str:
    return f"{context}\n\n{chunk}" if context else chunk
