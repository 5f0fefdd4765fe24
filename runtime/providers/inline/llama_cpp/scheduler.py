"""Continuous batching: one chat model, N slots, one `llama_decode` per step for every running answer.

On CPU, decoding a small model is bound by reading its weights once per step, so a step that
decodes a token for each of 8 sequences costs far less than 8 steps. The context is made with one
llama.cpp sequence per slot (`n_seq_max`) and a KV cache of its own for each (`kv_unified` off):
measured on SmolLM2, a sequence's logits are then bit for bit the same whether it is decoded alone or
beside others (with one shared cache they were not: other sequences' cells change the attention's
sums), so a seeded request gives the same text alone or in a batch.

A thread runs the loop while there is work and ends when there is none (an idle model holds no
OpenMP team, see threads.CallThreads). Each step: cancelled answers leave, waiting requests take
free slots, one batch holds the next token of every decoding sequence, and each samples from its own
logits row with its own sampler chain (the chain llama-cpp-python builds for one-at-a-time decoding);
then a chunk of a joining prompt is evaluated (so running streams go on while it is read).

Prompt-state reuse per slot (slots.py): a request takes the free slot whose sequence shares the
longest prefix with its prompt, or loads a saved state that shares more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pocketstack.providers.inline.llama_cpp.generation import Answer, Outcome, Piece, Sampling
from pocketstack.providers.inline.llama_cpp.slots import Slots
from pocketstack.providers.threads import BridgedStream, _name_native_thread

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
JOINING_CHUNK = 128  # prompt tokens per step while other sequences decode: their stall stays ~one short batch


def widen(llm: Any, slots: int) -> None:
    """Give a loaded `Llama` a context of `slots` sequences, each with the window it had alone (llama-cpp-
    python has no parameter for n_seq_max): the context it made is freed and replaced."""
    import llama_cpp
    from llama_cpp import _internals

    params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
    params.n_seq_max = slots
    params.kv_unified = False  # a cache per sequence: answers do not depend on their neighbours
    params.n_ctx = llm.n_ctx() * slots
    llm._ctx.close()
    llm._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    llm.context_params = params


def sampler_chain(llm: Any, sampling: Sampling, grammar: Any) -> Any:
    """The chain `Llama.generate` builds for these settings (penalties, grammar, then greedy or
    top-k / typical / top-p / min-p / temperature / seeded draw), so answers match the one-at-a-time
    path. logit_bias is added to the logits row before the chain instead of by a Python callback."""
    import llama_cpp
    from llama_cpp import _internals

    make: Any = _internals.LlamaSampler  # untyped in llama-cpp-python
    chain = make()
    chain.add_penalties(
        n_vocab=llm.n_vocab(),
        penalty_last_n=llm.last_n_tokens_size,
        penalty_repeat=1.0,
        penalty_freq=sampling.frequency_penalty,
        penalty_present=sampling.presence_penalty,
    )
    if grammar is not None:
        chain.add_grammar(llm._model, grammar)
    if sampling.temperature <= 0.0:
        chain.add_greedy()
    else:
        seed = sampling.seed if sampling.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
        chain.add_top_k(sampling.top_k)
        chain.add_typical(1.0, 1)
        chain.add_top_p(sampling.top_p, 1)
        chain.add_min_p(sampling.min_p, 1)
        chain.add_temp(sampling.temperature)
        chain.add_dist(seed)
    return chain


@dataclass
class Job:
    """One answer to generate (a choice of a request), and how it is handed back."""

    tokens: list[int]
    max_tokens: int
    sampling: Sampling
    stops: list[str]
    grammar: Any
    top_logprobs: int | None
    end_logprob: bool
    reuse: bool
    emit: Callable[[Piece], None]
    done: concurrent.futures.Future[Outcome]
    cancelled: threading.Event = field(default_factory=threading.Event)
    slot: int = -1  # the slot it was given


@dataclass
class Call:
    """Work that needs the raw context on slot 0 (prompt logprobs): run on the loop thread between steps."""

    function: Callable[[Any], Any]
    tokens: list[int]  # what slot 0 holds afterwards, batch-evaluated
    done: concurrent.futures.Future[Any]


@dataclass
class _Running:
    job: Job
    slot: int
    chain: Any
    answer: Answer
    cached: int
    todo: list[int]  # prompt tokens still to evaluate
    n_past: int  # tokens the slot's sequence holds
    next_token: int = -1  # the last sampled token, decoded in the next step
    captured: Any = None  # that step's logits row, for logprobs
    row: int = -1  # this step's logits row in the batch


class Scheduler:
    def __init__(self, llm: Any, slots: int, cache_bytes: int, name: str) -> None:
        import llama_cpp

        self._llm, self._name = llm, name
        self._lib = llama_cpp
        self._ctx = llm._ctx.ctx
        self.n_ctx = int(llama_cpp.llama_n_ctx_seq(self._ctx))  # each slot's window
        self._n_batch = int(llm.n_batch)
        self._n_vocab = int(llm.n_vocab())
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self.slots = Slots(llm, slots, cache_bytes)
        self._pending: deque[Job | Call] = deque()
        self._running: list[_Running] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the event loop's side --------------------------------------------------------------

    def submit(self, work: Job | Call) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: the model was unloaded")
            self._pending.append(work)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    async def call(self, function: Callable[[Any], Any], tokens: list[int]) -> Any:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.submit(Call(function, tokens, done))
        return await asyncio.wrap_future(done)

    def close(self) -> None:
        """Stop: answers in flight end as cancelled at the next step (an unloaded model or a server
        stopping does not wait for them), then the loop ends."""
        with self._lock:
            self._closed = True
            thread = self._thread
            for work in [*self._pending, *(r.job for r in list(self._running))]:
                if isinstance(work, Job):
                    work.cancelled.set()
        if thread is not None:
            thread.join()
        self._lib.llama_batch_free(self._batch)

    # -- the loop thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        _name_native_thread(self._name)
        try:
            while True:
                with self._lock:
                    if not self._running and not self._pending:
                        self._thread = None
                        return
                    admitted = self._admit()
                for work in admitted:
                    self._start(work)
                self._leave_cancelled()
                if self._running:
                    self._step()
        except BaseException as exc:  # a failed decode: every answer in flight fails with it, none hangs
            log.exception("%s: the batch loop failed", self._name)
            with self._lock:
                self._thread = None
                waiting = list(self._pending)
                self._pending.clear()
            for running in self._running:
                self.slots.free(running.slot, [])
                _settle(running.job.done, error=exc)
            self._running = []
            for work in waiting:
                _settle(work.done, error=exc)

    def _admit(self) -> list[Job | Call]:
        """Pending work that can start now (under the lock): jobs while slots are free, in order; a Call
        once slot 0 is free (slot 0 is kept for it meanwhile)."""
        admitted: list[Job | Call] = []
        call_waiting = False
        for work in list(self._pending):
            if isinstance(work, Call):
                if self.slots.is_free(0) and not call_waiting:
                    self.slots.take(0)
                    admitted.append(work)
                    self._pending.remove(work)
                call_waiting = True
                continue
            if work.cancelled.is_set():
                self._pending.remove(work)
                admitted.append(work)
                continue
            slot = self.slots.choose(work.tokens if work.reuse else [], avoid_zero=call_waiting)
            if slot is None:
                break
            self.slots.take(slot)
            work.slot = slot
            admitted.append(work)
            self._pending.remove(work)
        return admitted

    def _start(self, work: Job | Call) -> None:
        if isinstance(work, Call):
            try:
                result = work.function(self._llm)
            except BaseException as exc:
                self.slots.free(0, [])
                _settle(work.done, error=exc)
            else:
                self.slots.free(0, work.tokens)
                _settle(work.done, result)
            return
        job = work
        if job.cancelled.is_set():
            _settle(job.done, Outcome("cancelled", len(job.tokens), 0))
            return
        slot = job.slot
        try:
            if not job.tokens:
                raise ValueError("a prompt without tokens has nothing to continue")
            cached = self.slots.prefill(slot, job.tokens, job.reuse)
            chain = sampler_chain(self._llm, job.sampling, job.grammar)
            answer = Answer(self._llm, job.max_tokens, job.stops, job.top_logprobs, job.end_logprob, job.emit)
        except BaseException as exc:
            self.slots.free(slot, [])
            _settle(job.done, error=exc)
            return
        self._running.append(_Running(job, slot, chain, answer, cached, job.tokens[cached:], cached))

    def _leave_cancelled(self) -> None:
        for running in [r for r in self._running if r.job.cancelled.is_set()]:
            running.answer.finish = "cancelled"
            self._finish(running)

    def _finish(self, running: _Running, error: BaseException | None = None) -> None:
        """The answer is over: its slot keeps the prompt's batch-evaluated state (not the answer's
        tokens, decoded one by one; see prompt_cache.py) for the conversation's next turn."""
        self._running.remove(running)
        job = running.job
        evaluated = len(job.tokens) - len(running.todo)
        self.slots.free(running.slot, job.tokens[:evaluated] if job.reuse else [])
        running.answer.close()
        running.chain.close()
        outcome = Outcome(running.answer.finish, len(job.tokens), len(running.answer.generated), running.cached)
        _settle(job.done, outcome, error)

    def _step(self) -> None:
        """One token for every decoding sequence in one decode; then the joining prompts, each chunk in a
        decode of its own, up to the step's budget of prompt tokens. llama.cpp splits a batch of sequences
        with separate caches into ubatches of equal tokens per sequence: a prompt chunk beside decoding
        tokens, or beside another prompt's chunk of another length, would have a token evaluated alone,
        whose logits differ in the last bits (prompt_cache.py), and the answer would depend on its
        neighbours. A decode per prompt keeps each alike alone or not, and prompts of different lengths
        all finish in the step that has room for them (one decode for all took the shortest's length,
        and the rest of each needed steps of its own: eight joining streams waited ~3 steps more)."""
        decoding = [r for r in self._running if not r.todo]
        if decoding:
            self._batch.n_tokens = 0
            for running in decoding:
                running.row = self._add(running.next_token, running.n_past, running.slot, True)
                running.n_past += 1
            self._decode(decoding)
        budget = JOINING_CHUNK if decoding else self._n_batch
        for running in [r for r in self._running if r.todo]:
            left = len(running.todo)
            # All that is left when it fits; else never leave a lone token (at least two stay).
            length = left if left <= budget else min(budget, left - 2)
            if length < 2 and length != left:
                break  # the budget is spent: the next step goes on with it
            budget -= length
            self._batch.n_tokens = 0
            chunk, running.todo = running.todo[:length], running.todo[length:]
            for offset, token in enumerate(chunk):
                running.row = self._add(token, running.n_past + offset, running.slot, not running.todo)
            running.n_past += length
            self._decode([] if running.todo else [running])
            if budget <= 0:
                break

    def _decode(self, sampled: list[_Running]) -> None:
        code = self._lib.llama_decode(self._ctx, self._batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        for running in sampled:
            try:
                ended = self._sample(running)
            except Exception as exc:  # this answer fails alone; the others go on
                self._finish(running, error=exc)
                continue
            if ended:
                self._finish(running)

    def _add(self, token: int, position: int, slot: int, logits: bool) -> int:
        batch = self._batch
        index: int = batch.n_tokens
        batch.token[index] = token
        batch.pos[index] = position
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = slot
        batch.logits[index] = logits
        batch.n_tokens = index + 1
        return index

    def _sample(self, running: _Running) -> bool:
        """Sample the sequence's next token from its row; True when its answer has ended."""
        job, lib = running.job, self._lib
        captured = None
        if job.sampling.logit_bias or job.top_logprobs is not None:
            row = self._row(running.row)
            for token_id, bias in job.sampling.logit_bias.items():
                row[token_id] += bias
            if job.top_logprobs is not None:
                captured = row.copy()
        token = int(lib.llama_sampler_sample(running.chain.sampler, self._ctx, running.row))
        running.next_token = token
        return running.answer.add(token, captured)

    def _row(self, index: int) -> np.ndarray[Any, Any]:
        import numpy as np

        pointer = self._lib.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))


def _settle(done: concurrent.futures.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


class SlotStream(BridgedStream[Piece, Outcome]):
    """An answer generated by the scheduler, as an async iterator of its pieces; `result` is its Outcome.

    Closing the iterator early (the client went away) cancels the answer, which leaves the batch at
    the next step; the close waits for that, so the slot is free once it returns."""

    def __init__(self, scheduler: Scheduler, make: Callable[[Callable[[Piece], None]], Job]) -> None:
        self._scheduler = scheduler
        self._make = make
        self._job: Job | None = None
        self.result: Outcome | None = None

    def _start(self, emit: Callable[[Piece], None]) -> asyncio.Future[Outcome]:
        self._job = job = self._make(emit)
        finished = asyncio.wrap_future(job.done)
        self._scheduler.submit(job)
        return finished

    def _stop(self) -> None:
        if self._job is not None:
            self._job.cancelled.set()
