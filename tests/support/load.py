"""The load mix of issue 21 §3, shared by `bench/load.py` and its bounded smoke test: many `openai`
clients at once against a real server, each looping over chat streams, non-streamed chat,
embeddings, vector store searches, uploads (ingested into a vector store) and responses with
file_search, until a deadline or a request budget.

Every answer is checked for its shape, not only its status: a 200 with no text counts as a
failure. A 429 with `Retry-After` is expected backpressure (counted apart, the client waits as told);
anything else that goes wrong is a failure, kept with what it said.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBEDDING = "llama-cpp/all-MiniLM-L6-v2"
DIMENSION = 384
CHAT_TOKENS = 8  # small answers: the run means many requests, not long generations
RESPONSE_TOKENS = 48  # room for the file_search call's arguments and a short answer
RETRY_AFTER_CAP_S = 5.0  # a client waits what Retry-After says, at most this (the run stays bounded)
ATTACH_TIMEOUT_S = 180.0

TOPICS = ["lighthouse", "comet", "orchard", "glacier", "violin", "harbour", "copper", "meadow"]
DOCUMENTS = {
    f"{topic}.txt": (
        f"Notes on the {topic}. The {topic} is described here in a few plain sentences. "
        f"People who study the {topic} keep records of what they see, season after season. "
        f"This document is about the {topic} and nothing else."
    )
    for topic in TOPICS[:4]
}

# Requests of each kind per 16 picks: the cheap ones dominate, as in an application's traffic.
WEIGHTS = {"chat_stream": 3, "chat": 2, "embeddings": 4, "search": 4, "upload": 1, "response": 1}
KINDS = list(WEIGHTS)


@dataclass
class Failure:
    kind: str
    what: str


@dataclass
class Tally:
    """What one phase of the run saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    throttled: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    sent: int = 0
    echo: bool = True  # print each failure as it happens

    def fail(self, kind: str, what: str) -> None:
        self.failures.append(Failure(kind, what))
        if self.echo and len(self.failures) <= 20:
            print(f"  FAILURE {kind}: {what}", flush=True)


class Unexpected(Exception):
    """An answer that came back but is not what the request asks for."""


class Cut(Exception):
    """A response whose forced file_search call max_output_tokens cut off: the small model can ramble inside the
    call's JSON, and inline::llama-cpp then answers the unfinished call as text (reported to the lead). The
    response is right to stop there: counted apart, not as a failure."""


@dataclass
class Mix:
    """The fixtures every client shares: the searched store and a scratch store that uploads land in."""

    client: openai.AsyncOpenAI
    store: str
    scratch: str
    numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def chat_stream(self) -> None:
        n = next(self.numbers)
        stream = await self.client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": f"({n}) Say one word about the {TOPICS[n % len(TOPICS)]}."}],
            max_tokens=CHAT_TOKENS,
            stream=True,
        )
        finished = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finished = chunk.choices[0].finish_reason
        if finished is None:
            raise Unexpected("the stream ended without a finish_reason")

    async def chat(self) -> None:
        n = next(self.numbers)
        answer = await self.client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": f"({n}) Name a colour of the {TOPICS[n % len(TOPICS)]}."}],
            max_tokens=CHAT_TOKENS,
        )
        if not answer.choices or answer.choices[0].finish_reason is None:
            raise Unexpected(f"no finished choice: {answer}")

    async def embeddings(self) -> None:
        n = next(self.numbers)
        texts = [f"({n}.{i}) a sentence about the {TOPICS[(n + i) % len(TOPICS)]}" for i in range(1 + n % 4)]
        answer = await self.client.embeddings.create(model=EMBEDDING, input=texts)
        if len(answer.data) != len(texts) or any(len(d.embedding) != DIMENSION for d in answer.data):
            raise Unexpected(f"{len(answer.data)} vectors for {len(texts)} inputs")

    async def search(self) -> None:
        n = next(self.numbers)
        found = await self.client.vector_stores.search(
            self.store, query=f"what people record about the {TOPICS[n % 4]}", max_num_results=3
        )
        if not found.data:
            raise Unexpected("a search of a store of 4 files found nothing")

    async def upload(self) -> None:
        """An upload ingested into the scratch store (embedded, stored), then both deleted again."""
        n = next(self.numbers)
        text = f"Upload {n}. " + DOCUMENTS[f"{TOPICS[n % 4]}.txt"]
        uploaded = await self.client.files.create(
            file=(f"upload-{n}.txt", io.BytesIO(text.encode())), purpose="assistants"
        )
        attached = await self.client.vector_stores.files.create(vector_store_id=self.scratch, file_id=uploaded.id)
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while attached.status == "in_progress" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            attached = await self.client.vector_stores.files.retrieve(uploaded.id, vector_store_id=self.scratch)
        if attached.status != "completed":
            raise Unexpected(f"ingestion of {uploaded.id} ended {attached.status}: {attached.last_error}")
        await self.client.vector_stores.files.delete(uploaded.id, vector_store_id=self.scratch)
        await self.client.files.delete(uploaded.id)

    async def response(self) -> None:
        n = next(self.numbers)
        answer = await self.client.responses.create(
            model=CHAT,
            input=f"({n}) What do people record about the {TOPICS[n % 4]}?",
            tools=[{"type": "file_search", "vector_store_ids": [self.store], "max_num_results": 2}],
            tool_choice="required",
            max_output_tokens=RESPONSE_TOKENS,
        )
        if answer.status not in ("completed", "incomplete") or not answer.output:
            raise Unexpected(f"response {answer.id} ended {answer.status}: {answer.error}")
        reason = answer.incomplete_details.reason if answer.incomplete_details else None
        if answer.output[0].type == "message" and reason == "max_output_tokens":
            raise Cut(answer.output_text[:160])
        if answer.output[0].type != "file_search_call":
            raise Unexpected(
                f"response {answer.id} ({answer.status}, {answer.incomplete_details}) did not search first: "
                f"{[o.type for o in answer.output]}, text {answer.output_text[:160]!r}"
            )

    def call(self, kind: str) -> Callable[[], Awaitable[None]]:
        return getattr(self, kind)  # type: ignore[no-any-return]


async def prepare(client: openai.AsyncOpenAI) -> Mix:
    """The searched store (4 small files, ingested) and the scratch store uploads go to, once a fresh home's
    first-run import has registered the default models."""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while not {CHAT, EMBEDDING} <= {model.id async for model in client.models.list()}:
        if time.monotonic() > deadline:
            raise RuntimeError("the default models were not imported in time")
        await asyncio.sleep(0.5)
    ids = [
        (await client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants")).id
        for name, text in DOCUMENTS.items()
    ]
    store = await client.vector_stores.create(name="load", file_ids=ids)
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while store.file_counts.completed < len(ids) and time.monotonic() < deadline:
        if store.file_counts.failed:
            raise RuntimeError(f"ingestion of the load store failed: {store.file_counts}")
        await asyncio.sleep(0.2)
        store = await client.vector_stores.retrieve(store.id)
    if store.file_counts.completed < len(ids):
        raise RuntimeError(f"the load store was not ingested in time: {store.file_counts}")
    scratch = await client.vector_stores.create(name="load-uploads")
    return Mix(client, store.id, scratch.id)


def client_for(base_url: str, timeout_s: float = 180.0) -> openai.AsyncOpenAI:
    """No retries of its own: every 429 and error reaches the tally. The timeout bounds a hung request."""
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="load", max_retries=0, timeout=timeout_s)


async def once(mix: Mix, kind: str, tally: Tally) -> float:
    """One request of a kind, its outcome in the tally; the seconds to wait before the next (Retry-After)."""
    started = time.perf_counter()
    tally.sent += 1
    try:
        await mix.call(kind)()
    except openai.RateLimitError as error:
        retry_after = error.response.headers.get("retry-after")
        if retry_after is None:
            tally.fail(kind, f"429 without Retry-After: {error.message}")
            return 1.0
        tally.throttled[kind] += 1
        return min(float(retry_after), RETRY_AFTER_CAP_S)
    except openai.APIStatusError as error:
        tally.fail(kind, f"{error.status_code}: {error.message}")
    except openai.APITimeoutError:
        tally.fail(kind, f"no answer within the client's timeout ({mix.client.timeout} s): a hung request?")
    except openai.APIError as error:  # connection errors, error frames in a stream
        tally.fail(kind, f"{type(error).__name__}: {error.message}")
    except Unexpected as error:
        tally.fail(kind, f"unexpected answer: {error}")
    except Cut:
        tally.cut[kind] += 1
        tally.latencies[kind].append(time.perf_counter() - started)  # an answer all the same
    else:
        tally.latencies[kind].append(time.perf_counter() - started)
    return 0.0


async def client_loop(mix: Mix, rng: random.Random, deadline: float, budget: list[int], tally: Tally) -> None:
    weights = [WEIGHTS[k] for k in KINDS]
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        wait = await once(mix, rng.choices(KINDS, weights)[0], tally)
        if wait:
            await asyncio.sleep(wait * (0.5 + rng.random()))  # jittered, so throttled clients do not return in step


async def phase(mix: Mix, clients: int, seconds: float, max_requests: int, seed: int, tally: Tally) -> None:
    """`clients` loops at once until `seconds` pass or `max_requests` are sent; waits for the last to finish."""
    deadline = time.monotonic() + seconds
    budget = [max_requests]
    await asyncio.gather(
        *(client_loop(mix, random.Random(seed * 1000 + i), deadline, budget, tally) for i in range(clients))
    )


@dataclass(frozen=True)
class Sample:
    """The server process as /proc shows it."""

    rss_kb: int
    fds: int
    threads: int

    def __str__(self) -> str:
        return f"RSS {self.rss_kb / 1024:.1f} MiB, {self.fds} fds, {self.threads} threads"


def sample(pid: int) -> Sample:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return Sample(
        rss_kb=int(fields["VmRSS"].split()[0]),
        fds=len(list(Path(f"/proc/{pid}/fd").iterdir())),
        threads=int(fields["Threads"]),
    )


def fd_targets(pid: int) -> Counter[str]:
    """What the open descriptors point at, by kind (a leak's report says which kind grew)."""
    kinds: Counter[str] = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        kinds[target.split(":", 1)[0] if ":" in target else target] += 1
    return kinds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
