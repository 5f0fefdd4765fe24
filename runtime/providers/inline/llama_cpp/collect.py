"""Streams collected into whole answers, for requests that did not ask to stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from pocketstack._generated import models
from pocketstack.telemetry.serving import note_first_token
from pocketstack.wire.chat_stream import ChatAssembler
from pocketstack.wire.fields import given


async def collect_chat(stream: AsyncGenerator[models.ChatCompletionChunk], identifier: str) -> models.ChatCompletion:
    assembler = ChatAssembler()
    waiting = True  # for the first token
    async with aclosing(stream) as chunks:  # a cancelled request stops its generation at once
        async for chunk in chunks:
            if waiting and any(given(c.delta.content) or given(c.delta.tool_calls) for c in chunk.choices):
                note_first_token()  # the router's span and metrics: a time to first token for whole answers too
                waiting = False
            assembler.add(chunk)
    return assembler.completion(identifier)


async def collect_completion(stream: AsyncGenerator[models.Completion]) -> models.Completion:
    collected: list[models.Completion] = []
    waiting = True  # for the first token
    async with aclosing(stream) as chunks:
        async for chunk in chunks:
            if waiting and any(c.text for c in chunk.choices):
                note_first_token()  # as collect_chat
                waiting = False
            collected.append(chunk)
    usage = next((c.usage for c in collected if not c.choices and given(c.usage) is not None), None)
    by_index: dict[int, list[models.CompletionChoice]] = {}
    for chunk in collected:
        for piece in chunk.choices:
            by_index.setdefault(piece.index, []).append(piece)
    first = collected[0]
    choices = [_whole_choice(index, by_index[index]) for index in sorted(by_index)]
    completion = models.Completion(id=first.id, created=first.created, model=first.model, choices=choices)
    if usage is not None:
        completion.usage = usage
    return completion


def _whole_choice(index: int, pieces: list[models.CompletionChoice]) -> models.CompletionChoice:
    entries = [c.logprobs for c in pieces if c.logprobs is not None]
    logprobs = None
    if entries:
        logprobs = models.CompletionLogprobs(
            tokens=[t for e in entries for t in e.tokens],
            token_logprobs=[t for e in entries for t in e.token_logprobs],
            top_logprobs=[t for e in entries for t in e.top_logprobs],
            text_offset=[t for e in entries for t in e.text_offset],
        )
    text = "".join(c.text for c in pieces)
    return models.CompletionChoice(index=index, text=text, finish_reason=pieces[-1].finish_reason, logprobs=logprobs)
