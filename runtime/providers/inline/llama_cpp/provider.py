"""inline::llama-cpp: GGUF models run by llama.cpp inside the server, offline.

Models load lazily on first use (llama_cpp itself is imported then too), one request at a time
per model in worker threads, or with `parallel` > 1 up to that many chat answers decoded together
(scheduler.py); the model store is scanned at start so stored and embedded models
are listed without registration.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import struct
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pocketstack._generated import models
from pocketstack.errors import BadRequestError, ServiceUnavailableError
from pocketstack.modelstore.gguf_info import GgufError, GgufInfo, read_info
from pocketstack.modelstore.store import StoredModel, discover
from pocketstack.providers.base import Health, ModelCheck, ProviderContext, ProviderModel, ServedModel, TokenCounts
from pocketstack.providers.inline.llama_cpp import chat, collect, completions, grammars, prompt_logprobs, vectors
from pocketstack.providers.inline.llama_cpp.config import LlamaCppConfig
from pocketstack.providers.inline.llama_cpp.embed_batch import EmbeddingBatcher
from pocketstack.providers.inline.llama_cpp.generation import Outcome, Piece, Sampling, generate
from pocketstack.providers.inline.llama_cpp.pool import ModelKey, ModelPool, Resident
from pocketstack.providers.inline.llama_cpp.prompt_cache import PromptCache
from pocketstack.providers.inline.llama_cpp.sampling import SAMPLING_DEFAULTS, sampling_of, stops_of
from pocketstack.providers.inline.llama_cpp.scheduler import Job, Scheduler, SlotStream, widen
from pocketstack.providers.priority import is_background
from pocketstack.providers.threads import BridgedStream, ThreadStream
from pocketstack.wire.fields import given, plain

T = TypeVar("T")
Generation = BridgedStream[Piece, Outcome]  # one answer's pieces, and its Outcome at the end
FINISH = {"stop": models.FinishReason.stop, "length": models.FinishReason.length}


@dataclass(frozen=True)
class Prepared:
    tokens: list[int]
    max_tokens: int
    stops: list[str]


def _served_context(info: GgufInfo, configured: int) -> int:
    """The context window a chat model is loaded with: the configured one, capped by the model's."""
    trained = info.context_length or 4096
    return min(configured or trained, trained)


def _metadata(info: GgufInfo, configured_context: int, shown_path: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"gguf_path": shown_path, "architecture": info.architecture}
    if info.model_type == "llm":  # what a request that leaves them unset gets (clients can tell before asking)
        metadata["sampling_defaults"] = dict(SAMPLING_DEFAULTS)
    if info.context_length:
        served = info.context_length if info.model_type != "llm" else _served_context(info, configured_context)
        metadata["context_length"] = served
    if info.model_type == "embedding" and info.embedding_length:
        metadata["embedding_dimension"] = info.embedding_length
        # The sizes `dimensions` may ask for. Cutting a vector short is only sound for a model trained
        # for it (Matryoshka); these were not, so their own size is the one (OpenAI refuses alike).
        metadata["supported_dimensions"] = [info.embedding_length]
    return metadata


def _usage(outcomes: list[Outcome]) -> models.Usage:
    """One request's usage: its prompt once (as OpenAI counts `n` choices), the tokens of every choice."""
    first = outcomes[0]
    completion_tokens = sum(o.completion_tokens for o in outcomes)
    return models.Usage(
        prompt_tokens=first.prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=first.prompt_tokens + completion_tokens,
        prompt_tokens_details=models.PromptTokensDetails(cached_tokens=first.cached_tokens),
    )


def _memory_bytes(llm: Any) -> int:
    """A loaded model's memory, read once at load for the `pocketstack.model.memory` gauge: its weights
    (llama.cpp's own count) plus its KV cache at the loaded context, estimated from the GGUF's
    dimensions at f16 (llama.cpp's default cache type): K and V, per layer, per position."""
    weights = int(llm._model.size())
    meta = llm.metadata
    arch = meta.get("general.architecture", "")
    try:
        layers = int(meta[f"{arch}.block_count"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        width = int(meta[f"{arch}.embedding_length"]) // heads * kv_heads
    except (KeyError, ValueError, ZeroDivisionError):  # an architecture that names them otherwise
        return weights
    return weights + 2 * layers * int(llm.n_ctx()) * width * 2


def _reuses_prompt(request: models.ChatCompletionRequest | models.CompletionRequest) -> bool:
    """llama.cpp server's `cache_prompt` (an extra field, on by default): false evaluates the whole prompt."""
    value = (request.model_extra or {}).get("cache_prompt", True)
    if not isinstance(value, bool):
        raise BadRequestError("cache_prompt is true or false.", param="cache_prompt")
    return value


def _generation(
    resident: Resident,
    prepared: Prepared,
    sampling: Sampling,
    grammar: Any,
    logprobs: int | None,
    cache: PromptCache,
    reuse: bool,
    end_logprob: bool = False,
) -> Generation:
    """One answer: in the model's batch (scheduler.py) when it has one, else the token loop on the
    model's own thread; its pieces streamed back to the event loop."""
    scheduler: Scheduler | None = resident.scheduler
    if scheduler is not None:
        return SlotStream(
            scheduler,
            lambda emit: Job(
                prepared.tokens,
                prepared.max_tokens,
                sampling,
                prepared.stops,
                grammar,
                logprobs,
                end_logprob,
                reuse,
                emit,
                concurrent.futures.Future(),
            ),
        )
    return ThreadStream[Piece, Outcome](
        lambda emit, cancelled: generate(
            resident.llm,
            prepared.tokens,
            max_tokens=prepared.max_tokens,
            sampling=sampling,
            stops=prepared.stops,
            grammar=grammar,
            top_logprobs=logprobs,
            emit=emit,
            cancelled=cancelled,
            cache=cache,
            reuse=reuse,
            end_logprob=end_logprob,
        ),
        resident.executor,
    )


def _chunk_logprobs(pieces: list[Piece]) -> models.ChoiceLogprobs:
    return models.ChoiceLogprobs(
        content=[
            models.TokenLogprob(
                token=lp.token,
                logprob=lp.logprob,
                bytes=lp.bytes,
                top_logprobs=[models.TopLogprob(token=t, logprob=v, bytes=b) for t, v, b in lp.top],
            )
            for piece in pieces
            for lp in piece.logprobs
        ]
    )


ChunkOf = Callable[..., models.ChatCompletionChunk]  # (delta, finish=None, pieces=None) -> a chunk of one choice


async def _choice_chunks(
    work: Generation, plan: chat.ToolPlan, chunk: ChunkOf
) -> AsyncGenerator[models.ChatCompletionChunk]:
    """One choice's chunks: its role, its text as it comes (or its tool call, held until it parses), its end."""
    yield chunk(models.ChunkDelta(role="assistant", content=""))
    held: list[Piece] = []  # text that may turn out to be a tool call
    holding, call_ended = plan.active, False
    async with aclosing(aiter(work)) as pieces:  # closing it at once is what stops llama.cpp
        async for piece in pieces:
            if holding:
                held.append(piece)
                text = "".join(p.text for p in held).lstrip()
                if "}" in piece.text and chat.call_ended(text):
                    # A call ends with its object: what a small model writes after it (more JSON, often
                    # until the context is full) is not generated.
                    call_ended = True
                    break
                if plan.forced or not text or text.startswith(("{", "`")):
                    continue
                holding = False
                piece = Piece("".join(p.text for p in held), [lp for p in held for lp in p.logprobs])
                held = []
            if piece.text or piece.logprobs:
                yield chunk(models.ChunkDelta(content=piece.text), pieces=[piece])
    outcome = work.result
    assert outcome is not None
    finish = FINISH.get(outcome.finish_reason, models.FinishReason.stop)
    if held:
        text = "".join(p.text for p in held)
        call = chat.parse_tool_call(text, plan)
        if call is not None:
            named = models.ChunkFunctionCall(name=call.function.name, arguments="")
            yield chunk(
                models.ChunkDelta(
                    tool_calls=[models.ChunkToolCall(index=0, id=call.id, type="function", function=named)]
                )
            )
            arguments = models.ChunkFunctionCall(arguments=call.function.arguments)
            yield chunk(models.ChunkDelta(tool_calls=[models.ChunkToolCall(index=0, function=arguments)]))
            finish = models.FinishReason.tool_calls if call_ended or outcome.finish_reason == "stop" else finish
        else:
            yield chunk(models.ChunkDelta(content=text), pieces=held)
    yield chunk(models.ChunkDelta(), finish=finish)


class LlamaCppProvider:
    def __init__(self, config: LlamaCppConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        self.pool = ModelPool(
            self._load, config.memory_budget_mb * 1024 * 1024, config.max_waiting, _memory_bytes, config.parallel
        )
        self._stored: dict[str, StoredModel] = {}

    async def initialize(self) -> None:
        await self.rediscover()

    async def rediscover(self) -> None:
        """Read the store again: at start, and when a model was imported into it while serving."""
        found = await asyncio.to_thread(discover, self.config.models_dir.expanduser())
        self._stored = {model.name: model for model in found}

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.pool.close)

    async def health(self) -> Health:
        return Health("OK")

    # -- models ------------------------------------------------------------------------------

    async def list_models(self) -> list[ProviderModel]:
        context = self.config.context_length
        return [
            ProviderModel(m.name, m.info.model_type, _metadata(m.info, context, self.shown_path(m.info.path)))
            for m in self._stored.values()
        ]

    def resolve(self, provider_model_id: str) -> Path:
        stored = self._stored.get(provider_model_id)
        if stored is not None:
            return stored.info.path
        path = Path(provider_model_id).expanduser()
        return path if path.is_absolute() else self.config.models_dir.expanduser() / path

    def shown_path(self, path: Path) -> str:
        """A model file as the API shows it: relative to the model store, else its bare name (no server paths)."""
        try:
            return path.relative_to(self.config.models_dir.expanduser()).as_posix()
        except ValueError:
            return path.name

    def _confined(self, path: Path) -> None:
        """A user's path must lead (symlinks followed, `..` resolved) into the model store or an allowed
        folder. The refusal is the same whether the file exists or not: no probing the disk through it."""
        folders = [self.config.models_dir, *self.config.allowed_model_dirs]
        try:
            real = path.resolve()
            if any(real.is_relative_to(folder.expanduser().resolve()) for folder in folders):
                return
        except (OSError, RuntimeError):  # a symlink loop, an unreadable folder: refused alike
            pass
        raise BadRequestError(
            "provider_model_id is a stored model's name, or the path of a GGUF file inside the model store "
            "(relative to it) or a folder the llama-cpp provider's allowed_model_dirs lists; this one is not.",
            code="model_path_not_allowed",
            param="provider_model_id",
        )

    async def check_model(self, provider_model_id: str, model_type: str | None, *, trusted: bool = False) -> ModelCheck:
        try:
            path = self.resolve(provider_model_id)
            if not trusted and provider_model_id not in self._stored:
                await asyncio.to_thread(self._confined, path)
            is_file = await asyncio.to_thread(path.is_file)
        except (OSError, RuntimeError, ValueError) as exc:  # a name too long for the filesystem, ~unknown-user, NUL
            raise BadRequestError(
                "provider_model_id is not a usable path.", code="invalid_model_path", param="provider_model_id"
            ) from exc
        if not is_file:
            raise BadRequestError(
                f"No GGUF file at {provider_model_id} (provider_model_id is a stored model's name or a GGUF path, "
                "relative to the model store or absolute).",
                code="model_file_not_found",
                param="provider_model_id",
            )
        try:
            info = await asyncio.to_thread(read_info, path)
        except (GgufError, OSError) as exc:
            raise BadRequestError(f"{path.name} is not a GGUF file: {exc}", code="invalid_model_file") from exc
        if model_type is not None and model_type != info.model_type:
            raise BadRequestError(
                f"{path.name} is a{'n' if info.model_type[0] in 'ae' else ''} {info.model_type} model, "
                f"not {model_type}.",
                code="model_type_mismatch",
                param="model_type",
            )
        return ModelCheck(info.model_type, _metadata(info, self.config.context_length, self.shown_path(info.path)))

    def _load(self, key: ModelKey) -> Any:
        from llama_cpp import Llama

        info = read_info(key.path)
        threads = self.config.threads or os.cpu_count() or 1
        try:
            if key.embedding:
                ctx = info.context_length or 512
                return Llama(
                    str(key.path),
                    embedding=True,
                    n_ctx=ctx,
                    n_batch=ctx,
                    n_ubatch=ctx,
                    n_threads=threads,
                    verbose=False,
                )
            ctx = _served_context(info, self.config.context_length)
            llm = Llama(str(key.path), n_ctx=ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
            if self.config.parallel > 1:
                widen(llm, self.config.parallel)
            return llm
        except (ValueError, RuntimeError) as exc:
            raise ServiceUnavailableError(f"llama.cpp could not load {key.path.name}: {exc}") from exc

    def _key(self, model: ServedModel, embedding: bool) -> ModelKey:
        return ModelKey(self.resolve(model.provider_model_id), embedding)

    def _batched(self, resident: Resident) -> Scheduler | None:
        """The chat model's batch loop when `parallel` > 1 (made with the first request that needs it)."""
        if self.config.parallel <= 1:
            return None
        if resident.scheduler is None:
            name = f"batch-{resident.key.path.stem[:9]}"  # the OS keeps 15 bytes of a thread's name
            resident.scheduler = Scheduler(resident.llm, self.config.parallel, self.config.prompt_cache_mb << 20, name)
        scheduler: Scheduler = resident.scheduler
        return scheduler

    def _embedder(self, resident: Resident) -> EmbeddingBatcher:
        """The embedding model's decode loop, which groups concurrent requests (made with the first one)."""
        if resident.scheduler is None:
            resident.scheduler = EmbeddingBatcher(resident.llm, resident.run)
        embedder: EmbeddingBatcher = resident.scheduler
        return embedder

    def _window(self, resident: Resident) -> int:
        """The context window of one answer: a slot's when the model batches (widen() made the context
        `parallel` windows wide)."""
        total = int(resident.llm.n_ctx())
        return total if resident.key.embedding else total // self.config.parallel

    def _cache(self, resident: Resident) -> PromptCache:
        """The model's prompt cache (a request with `cache_prompt: false` only tells it the context is reused)."""
        resident.prompt_cache = resident.prompt_cache or PromptCache(self.config.prompt_cache_mb * 1024 * 1024)
        return resident.prompt_cache

    # -- generation --------------------------------------------------------------------------

    @staticmethod
    def _prepare(n_ctx: int, tokens: list[int], requested: int | None, stops: list[str]) -> Prepared:
        if len(tokens) >= n_ctx:
            raise BadRequestError(
                f"This model's maximum context length is {n_ctx} tokens, but the prompt has {len(tokens)} tokens.",
                code="context_length_exceeded",
                param="messages",
            )
        room = n_ctx - len(tokens)
        if requested is not None and requested > room:
            raise BadRequestError(
                f"This model's maximum context length is {n_ctx} tokens; you requested {len(tokens) + requested} "
                f"({len(tokens)} in the prompt, {requested} for the completion).",
                code="context_length_exceeded",
                param="max_tokens",
            )
        return Prepared(tokens, requested or room, stops)

    @staticmethod
    def _chat_tokens(llm: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BadRequestError("This model has no chat template; use /v1/completions.", code="no_chat_template")
        vocab = llm._model
        formatter = Jinja2ChatFormatter(
            template, eos_token=vocab.token_get_text(llm.token_eos()), bos_token=vocab.token_get_text(llm.token_bos())
        )
        try:
            rendered = formatter(messages=messages)  # type: ignore[arg-type]  # its TypedDicts are plain dicts
        except Exception as exc:  # templates raise on conversations they do not accept
            raise BadRequestError(f"The model's chat template rejected the messages: {exc}", param="messages") from exc
        tokens = llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        return tokens, [s for s in rendered.stop if s] if isinstance(rendered.stop, list) else []

    async def chat_completion(
        self, model: ServedModel, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        plan = chat.tool_plan(request)
        schema = chat.output_schema(request, plan)
        messages = chat.template_messages(request, plan.tools)
        grammar = grammars.grammar_of(schema, given(request.grammar))
        requested = given(request.max_completion_tokens, given(request.max_tokens))
        logprobs = given(request.top_logprobs, 0) if given(request.logprobs, False) else None
        if given(request.stream, False):
            options = given(request.stream_options)
            include_usage = options is not None and bool(given(options.include_usage, False))
            return self._chat_stream(model, request, messages, grammar, requested, logprobs, plan, include_usage)
        stream = self._chat_stream(model, request, messages, grammar, requested, logprobs, plan, include_usage=True)
        return await collect.collect_chat(stream, model.identifier)

    async def _chat_stream(
        self,
        model: ServedModel,
        request: models.ChatCompletionRequest,
        messages: list[dict[str, str]],
        grammar: Any,
        requested: int | None,
        logprobs: int | None,
        plan: chat.ToolPlan,
        include_usage: bool,
    ) -> AsyncGenerator[models.ChatCompletionChunk]:
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(
            index: int, delta: models.ChunkDelta, finish: Any = None, pieces: list[Piece] | None = None
        ) -> models.ChatCompletionChunk:
            choice = models.ChunkChoice(index=index, delta=delta, finish_reason=finish)
            if pieces is not None and logprobs is not None:
                choice.logprobs = _chunk_logprobs(pieces)
            return models.ChatCompletionChunk(
                id=completion_id, created=created, model=model.identifier, choices=[choice]
            )

        async with self.pool.use(self._key(model, embedding=False)) as resident:
            llm = resident.llm
            self._batched(resident)
            grammars.check_grammar(llm, grammar)
            tokens, template_stops = await resident.run(self._chat_tokens, llm, messages)
            prepared = self._prepare(self._window(resident), tokens, requested, stops_of(request.stop) + template_stops)
            sampling, reuse = sampling_of(request, llm.n_vocab()), _reuses_prompt(request)
            outcomes: list[Outcome] = []
            # `n` choices, one after another (the prompt's state is reused from the cache, so each
            # costs only its own tokens); the seed moves on per choice, so a given seed reproduces
            # the whole set without making its members equal.
            for index in range(given(request.n, 1)):
                seeded = replace(sampling, seed=None if sampling.seed is None else sampling.seed + index)
                work = _generation(resident, prepared, seeded, grammar, logprobs, self._cache(resident), reuse)
                async for item in _choice_chunks(work, plan, partial(chunk, index)):
                    yield item
                assert work.result is not None
                outcomes.append(work.result)
            if include_usage:
                usage = _usage(outcomes)
                yield models.ChatCompletionChunk(
                    id=completion_id, created=created, model=model.identifier, choices=[], usage=usage
                )

    async def completion(
        self, model: ServedModel, request: models.CompletionRequest
    ) -> models.Completion | AsyncIterator[models.Completion]:
        prompts = completions.prompts_of(request)
        grammar = grammars.gbnf(given(request.grammar))
        if given(request.stream, False):
            options = given(request.stream_options)
            include_usage = options is not None and bool(given(options.include_usage, False))
            return self._completion_stream(model, request, prompts, grammar, include_usage)
        stream = self._completion_stream(model, request, prompts, grammar, include_usage=True)
        return await collect.collect_completion(stream)

    async def _completion_stream(
        self,
        model: ServedModel,
        request: models.CompletionRequest,
        prompts: list[str | list[int]],
        grammar: Any,
        include_usage: bool,
    ) -> AsyncGenerator[models.Completion]:
        """completions.py: `n` choices per prompt, echo, and the prompt's logprobs (prompt_logprobs.py) when asked."""
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        logprobs, echo, n = given(request.logprobs), given(request.echo, False), given(request.n, 1)
        requested = given(request.max_tokens, 16)

        def make(choices: list[models.CompletionChoice]) -> models.Completion:
            return models.Completion(id=completion_id, created=created, model=model.identifier, choices=choices)

        chunks = completions.Chunks(make, logprobs)
        async with self.pool.use(self._key(model, embedding=False)) as resident:
            llm = resident.llm
            scheduler = self._batched(resident)
            grammars.check_grammar(llm, grammar)
            sampling, reuse = sampling_of(request, llm.n_vocab()), _reuses_prompt(request)
            counted: list[list[Outcome]] = []
            for number, raw in enumerate(prompts):
                source = await resident.run(completions.tokenize, llm, raw)
                prepared = self._prepare(self._window(resident), source.tokens, requested, stops_of(request.stop))
                scored = None
                if echo and logprobs is not None and scheduler is not None:  # on slot 0, between batch steps
                    evaluate = partial(prompt_logprobs.evaluate, tokens=source.tokens, top=logprobs, cache=None)
                    scored = await scheduler.call(partial(evaluate, skip_first_text=source.added_bos), source.tokens)
                elif echo and logprobs is not None:
                    cache = self._cache(resident)
                    scored = await resident.run(
                        prompt_logprobs.evaluate, llm, source.tokens, logprobs, cache, source.added_bos
                    )
                outcomes: list[Outcome] = []
                for choice in range(n):  # as chat's `n`: one after another, a seed each
                    index = number * n + choice
                    if echo:
                        yield chunks.echo(index, source, scored)
                    if requested == 0:
                        outcomes.append(Outcome("length", len(source.tokens), 0))
                        yield chunks.text(index, "", finish=models.FinishReason.length)
                        continue
                    seeded = replace(sampling, seed=None if sampling.seed is None else sampling.seed + choice)
                    cache = self._cache(resident)
                    work = _generation(resident, prepared, seeded, grammar, logprobs, cache, reuse, end_logprob=True)
                    async with aclosing(aiter(work)) as pieces:
                        async for piece in pieces:
                            yield chunks.text(index, piece.text, pieces=[piece])
                    outcome = work.result
                    assert outcome is not None
                    if scored is not None:
                        outcome.cached_tokens = 0  # the prompt was evaluated whole, for its logprobs
                    outcomes.append(outcome)
                    yield chunks.text(index, "", finish=FINISH[outcome.finish_reason])
                counted.append(outcomes)
            if include_usage:  # OpenAI's form: a last chunk with no choices
                completion = make([])
                completion.usage = completions.usage(counted)
                yield completion

    # -- embeddings --------------------------------------------------------------------------

    async def embeddings(self, model: ServedModel, request: models.EmbeddingsRequest) -> models.EmbeddingsResponse:
        raw = plain(request.input)
        inputs: list[str | list[int]] = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
        encoding = given(request.encoding_format, models.EncodingFormat.float)
        async with self.pool.use(self._key(model, embedding=True)) as resident:
            llm = resident.llm
            dimension = llm.n_embd()
            wanted = given(request.dimensions)
            if wanted is not None and wanted != dimension:
                raise BadRequestError(
                    f"{model.identifier} makes {dimension}-dimensional embeddings; it cannot make {wanted} "
                    "(its metadata's supported_dimensions lists the sizes it can).",
                    param="dimensions",
                )
            embeddings, tokens = await self._embedder(resident).embed(inputs, background=is_background())
        data = []
        for index, vector in enumerate(embeddings):
            value: list[float] | str = vector
            if encoding == models.EncodingFormat.base64:
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append(models.Embedding(embedding=value, index=index))
        return models.EmbeddingsResponse(
            data=data, model=model.identifier, usage=models.EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens)
        )

    async def count_tokens(self, model: ServedModel, texts: list[str]) -> TokenCounts:
        async with self.pool.use(self._key(model, embedding=model.model_type != "llm")) as resident:
            counts = await resident.run(vectors.count_tokens, resident.llm, texts)
            return replace(counts, context_length=self._window(resident))

    async def rerank(self, model: ServedModel, request: models.RerankRequest) -> models.RerankResponse:
        query = vectors.rerank_text(request.query)
        items = [vectors.rerank_text(item) for item in request.items]
        async with self.pool.use(self._key(model, embedding=True)) as resident:
            llm = resident.llm
            scores = await resident.run(vectors.rank, llm, query, items)
        ranked = sorted(enumerate(scores), key=lambda pair: -pair[1])[: given(request.max_num_results, len(scores))]
        return models.RerankResponse(data=[models.RerankResult(index=i, relevance_score=s) for i, s in ranked])


def create(config: LlamaCppConfig, context: ProviderContext) -> LlamaCppProvider:
    return LlamaCppProvider(config, context)
