"""Vector stores: search latency and recall at 50k vectors, insert time, and ingestion against raw embedding.

A real server (`pocketstack run`, edge distribution, inline::sqlite-vec) on a temporary home:

1. 50,000 unit-norm random float32 vectors of 384 dimensions (fixed seed), each with a short
   text of synthetic words, inserted with `POST /v1/vector-io/insert` (batches of 2,000; the
   request bodies are encoded before the clock starts, their encoding is the client's cost and is
   printed apart; target <= 20 s).
2. 200 queries, k = 10, in each mode through `POST /v1/vector-io/query` (end to end: HTTP, the
   query's embedding for vector and hybrid, search, JSON):
   - vector: recall@10 against exact numpy brute force over the same matrix, run in this process
     with the query's own embedding (from /v1/embeddings);
   - keyword and hybrid: a question made of 4 words of one target chunk plus everyday words; the
     figure is how often the target is in the top 10.
   The search alone is also timed in this process on the same database (the provider's
   `search()` with the query vector), against numpy's brute force over an in-memory matrix.
   The OpenAI route `POST /v1/vector_stores/{id}/search` with the same text questions is timed
   the same way (target p50 <= 15 ms with recall@10 >= 0.99), then with 8 clients at once
   (concurrent query embeddings share decodes).
3. Ingestion: real text files (this repository's documents and Python standard-library modules)
   uploaded, attached as one file batch, timed until every file is completed; against raw
   llama-cpp-python `embed()` of the same chunks in this process (same model, same threads).

    python bench/vector.py [--vectors 50000] [--queries 200] [--provider sqlite-vec|pgvector] [--no-ingestion]

With `--provider pgvector` the same run goes to `remote::pgvector` on a PostgreSQL with pgvector
started for the run (found as the tests find it: tests/support/postgres.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from pocketstack.modelstore import store
from pocketstack.modelstore.bert_import import convert_any
from tests.support.process import environment, free_port, pocketstack

REPO = Path(__file__).resolve().parent.parent
DIMENSION, K, INSERT_BATCH = 384, 10, 2000
EVERYDAY = ["what", "do", "you", "know", "about", "the", "tell", "me", "where", "is", "a", "and"]
STDLIB_MODULES = ["textwrap", "csv"]


class Http:
    """One keep-alive connection: the latency of a request, not of a TCP handshake."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None, **headers: str) -> Any:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        self.connection.request(method, path, payload, {"Content-Type": "application/json", **headers})
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None


def _vocabulary(rng: np.random.Generator, size: int = 3000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "or", "qui", "dan", "fe", "zu", "pra", "nol", "is"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables, size=int(rng.integers(2, 5)))))
    return sorted(words)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def _wait_healthy(client: Http, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            client.call("GET", "/v1/health")
            return
        except (ConnectionError, OSError, RuntimeError):
            client.connection.close()
            time.sleep(0.1)
    raise RuntimeError("the server did not become healthy")


def _documents(folder: Path) -> list[Path]:
    import sysconfig

    folder.mkdir(parents=True)
    sources = sorted(p for p in REPO.rglob("*.md") if ".venv" not in p.parts and "build" not in p.parts)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources += [stdlib / f"{name}.py" for name in STDLIB_MODULES]
    documents = []
    for source in sources:
        target = folder / (source.stem + ("-" + source.parent.name if source.suffix == ".py" else "") + ".txt")
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        documents.append(target)
    return documents


def _multipart(path: Path) -> tuple[bytes, str]:
    boundary = "pocketstack-bench-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def _provider_search(entry: dict[str, Any], home: Path, store_id: str, vectors: np.ndarray) -> list[float]:
    """The provider's search alone, on the server's database, opened in this process."""
    from pocketstack.providers import PROVIDERS
    from pocketstack.providers.base import ProviderContext
    from pocketstack.providers.vector_search import SearchQuery, VectorIOProvider

    spec = PROVIDERS[entry["provider_type"]]
    created = spec.create(spec.config_model.model_validate(entry["config"]), ProviderContext("bench", home))
    provider: VectorIOProvider = created  # type: ignore[assignment]
    await provider.initialize()
    try:
        await provider.search(store_id, SearchQuery(vector=vectors[0].tolist(), text="", mode="vector", k=K))  # load
        timings = []
        for vector in vectors:
            query = SearchQuery(vector=vector.tolist(), text="", mode="vector", k=K)
            started = time.perf_counter()
            await provider.search(store_id, query)
            timings.append(time.perf_counter() - started)
        return timings
    finally:
        await provider.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--provider", choices=["sqlite-vec", "pgvector"], default="sqlite-vec")
    parser.add_argument("--no-ingestion", action="store_true", help="skip part 3 (file ingestion)")
    args = parser.parse_args()

    from llama_cpp import Llama

    archive = store.package_file(store.DEFAULT_EMBEDDING_PACKAGE, store.DEFAULT_EMBEDDING_ARCHIVE)
    assert archive, "install the default model wheels first (make install)"
    threads = os.cpu_count() or 1
    rng = np.random.default_rng(20261201)
    vocabulary = _vocabulary(rng)

    with contextlib.ExitStack() as cleanup:
        tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="pocketstack-bench-"))
        os.chmod(tmp, 0o755)  # PostgreSQL may run as another user
        home = Path(tmp) / "home"
        model_name = f"llama-cpp/{store.DEFAULT_EMBEDDING_NAME}"
        embed_path = convert_any(archive, home / "models" / f"{store.DEFAULT_EMBEDDING_NAME}.gguf", "e").path
        config = yaml.safe_load((REPO / "runtime/distributions/edge.yaml").read_text())
        config["providers"]["inference"][0]["config"]["threads"] = threads
        entry = config["providers"]["vector_io"][0]
        if args.provider == "pgvector":
            from tests.support.postgres import running_postgres

            pg = cleanup.enter_context(running_postgres(Path(tmp) / "postgres"))
            entry = {"provider_id": "pgvector", "provider_type": "remote::pgvector",
                     "config": {"host": pg.host, "port": pg.port, "user": pg.user}}  # fmt: skip
            config["providers"]["vector_io"] = [entry]
        else:  # this process opens the server's file: the default path under the same home
            entry = {**entry, "config": {}}
        config_path = Path(tmp) / "run.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        env = {**environment(home), "POCKETSTACK_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(pocketstack("run", str(config_path), "--port", str(port)), env=env)
        client = Http(port)
        try:
            _wait_healthy(client, server)
            results = _run(client, home, entry, model_name, embed_path, vocabulary, rng, args, threads, Llama)
        finally:
            server.terminate()
            server.wait(timeout=60)
    _report(results, args, threads)
    return 0


def _run(
    client: Http, home: Path, entry: dict[str, Any], model: str, embed_path: Path, vocabulary: list[str],
    rng: np.random.Generator, args: argparse.Namespace, threads: int, llama: Any,
) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {}
    # 1. 100k random unit vectors with synthetic texts, inserted over HTTP
    matrix = rng.standard_normal((args.vectors, DIMENSION), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    texts = [" ".join(rng.choice(vocabulary, size=12)) for _ in range(args.vectors)]
    created = client.call("POST", "/v1/vector_stores", {"name": "bench", "embedding_model": model})
    store_id = created["id"]
    started = time.perf_counter()
    bodies = [
        json.dumps({"vector_store_id": store_id, "chunks": [
            {"content": texts[i], "chunk_id": f"c{i}", "metadata": {"document_id": f"d{i // 100}"},
             "embedding": matrix[i].tolist()}
            for i in range(begin, min(begin + INSERT_BATCH, args.vectors))
        ]}).encode()
        for begin in range(0, args.vectors, INSERT_BATCH)
    ]  # fmt: skip
    results["encode_s"] = time.perf_counter() - started
    started = time.perf_counter()
    for encoded in bodies:
        client.call("POST", "/v1/vector-io/insert", raw=encoded)
    results["insert_s"] = time.perf_counter() - started

    # 2. queries: natural questions for vector mode; keyword/hybrid questions aimed at one chunk
    questions = [
        f"{rng.choice(['How', 'Why', 'When', 'Where'])} does the {rng.choice(vocabulary)} meet the {w}?"
        for w in rng.choice(vocabulary, size=args.queries)
    ]
    query_vectors = np.array(
        [e["embedding"] for e in client.call("POST", "/v1/embeddings", {"model": model, "input": questions})["data"]],
        dtype=np.float32,
    )
    targets = rng.choice(args.vectors, size=args.queries, replace=False)
    aimed = [
        " ".join([*rng.choice(EVERYDAY, size=3), *rng.choice(texts[t].split(), size=4, replace=False)]) for t in targets
    ]
    for mode, queries in (("vector", questions), ("keyword", aimed), ("hybrid", aimed)):
        client.call("POST", "/v1/vector-io/query", {"vector_store_id": store_id, "query": queries[0],
                                                    "params": {"mode": mode, "max_chunks": K}})  # fmt: skip
        timings, found = [], []
        for query in queries:
            body = {"vector_store_id": store_id, "query": query, "params": {"mode": mode, "max_chunks": K}}
            started = time.perf_counter()
            answer = client.call("POST", "/v1/vector-io/query", body)
            timings.append(time.perf_counter() - started)
            found.append([int(chunk["chunk_id"][1:]) for chunk in answer["chunks"]])
        results[mode] = {"timings": timings, "found": found}
    results["search"] = _store_searches(client, store_id, questions, {text: i for i, text in enumerate(texts)})
    results["concurrent"] = _concurrent_searches(client.port, store_id, questions)
    exact_timings, recalls = [], []
    for vector, hits in zip(query_vectors, results["vector"]["found"], strict=True):
        started = time.perf_counter()
        scores = matrix @ vector
        top = np.argpartition(-scores, K)[:K]
        exact_timings.append(time.perf_counter() - started)
        recalls.append(len(set(top.tolist()) & set(hits)) / K)
    results["exact_timings"], results["recall"] = exact_timings, statistics.mean(recalls)
    results["search_recall"] = statistics.mean(
        len(set(np.argpartition(-(matrix @ vector), K)[:K].tolist()) & set(hits)) / K
        for vector, hits in zip(query_vectors, results["search"]["found"], strict=True)
    )
    for mode in ("keyword", "hybrid"):
        hits = [int(t) in found for t, found in zip(targets, results[mode]["found"], strict=True)]
        results[mode]["hit_rate"] = sum(hits) / len(hits)
    results["provider_timings"] = asyncio.run(_provider_search(entry, home, store_id, query_vectors))
    results["embed_query"] = _percentiles(_time_embeddings(client, model, questions[:50]))[0]
    embedder = llama(str(embed_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=threads,
                     n_threads_batch=threads, verbose=False)  # fmt: skip
    raw_timings = []
    for question in questions[:50]:
        started = time.perf_counter()
        embedder.embed(question, normalize=True)
        raw_timings.append(time.perf_counter() - started)
    embedder.close()
    results["raw_embed_query"] = _percentiles(raw_timings)[0]

    if args.no_ingestion:
        return results
    # 3. ingestion of real text files against raw embedding of the same chunks
    documents = _documents(home.parent / "documents")
    file_ids = []
    for document in documents:
        form, content_type = _multipart(document)
        file_ids.append(client.call("POST", "/v1/files", raw=form, **{"Content-Type": content_type})["id"])
    ingest_store = client.call("POST", "/v1/vector_stores", {"name": "docs", "embedding_model": model})["id"]
    started = time.perf_counter()
    batch = client.call("POST", f"/v1/vector_stores/{ingest_store}/file_batches", {"file_ids": file_ids})
    while batch["status"] == "in_progress":
        time.sleep(0.05)
        batch = client.call("GET", f"/v1/vector_stores/{ingest_store}/file_batches/{batch['id']}")
    ingest_s = time.perf_counter() - started
    assert batch["file_counts"]["completed"] == len(file_ids), batch
    chunk_texts = [
        item["text"]
        for file_id in file_ids
        for item in client.call("GET", f"/v1/vector_stores/{ingest_store}/files/{file_id}/content")["data"]
    ]
    embedder = llama(str(embed_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=threads,
                     n_threads_batch=threads, verbose=False)  # fmt: skip
    started = time.perf_counter()
    for begin in range(0, len(chunk_texts), 32):
        embedder.embed(chunk_texts[begin : begin + 32], normalize=True)
    raw_s = time.perf_counter() - started
    embedder.close()
    results["ingest"] = {"files": len(file_ids), "chunks": len(chunk_texts), "seconds": ingest_s, "raw_s": raw_s}
    return results


def _store_searches(client: Http, store_id: str, questions: list[str], index_of: dict[str, int]) -> dict[str, Any]:
    """The OpenAI route, one question at a time: the figure the p50 target is about (its hits name no
    chunk id: a hit's text, unique among the synthetic ones, tells which chunk it is)."""
    path = f"/v1/vector_stores/{store_id}/search"
    client.call("POST", path, {"query": questions[0], "max_num_results": K})
    timings, found = [], []
    for question in questions:
        started = time.perf_counter()
        answer = client.call("POST", path, {"query": question, "max_num_results": K})
        timings.append(time.perf_counter() - started)
        found.append([index_of.get(hit["content"][0]["text"], -1) for hit in answer["data"]])
    return {"timings": timings, "found": found}


def _concurrent_searches(port: int, store_id: str, questions: list[str], clients: int = 8) -> dict[str, Any]:
    """The same questions from `clients` connections at once: per-search latency and searches a second."""
    from concurrent.futures import ThreadPoolExecutor

    path = f"/v1/vector_stores/{store_id}/search"
    shares = [questions[i::clients] for i in range(clients)]

    def one_client(share: list[str]) -> list[float]:
        connection, timings = Http(port), []
        for question in share:
            started = time.perf_counter()
            connection.call("POST", path, {"query": question, "max_num_results": K})
            timings.append(time.perf_counter() - started)
        return timings

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = [t for share in pool.map(one_client, shares) for t in share]
    return {"timings": timings, "per_s": len(questions) / (time.perf_counter() - started), "clients": clients}


def _time_embeddings(client: Http, model: str, texts: list[str]) -> list[float]:
    timings = []
    for text in texts:
        started = time.perf_counter()
        client.call("POST", "/v1/embeddings", {"model": model, "input": text})
        timings.append(time.perf_counter() - started)
    return timings


def _report(results: dict[str, Any], args: argparse.Namespace, threads: int) -> None:
    n = args.vectors
    print(f"vector store bench: {n:,} vectors x {DIMENSION} dims, {args.queries} queries, k={K}, {threads} threads")
    print(
        f"insert over HTTP (pre-embedded): {results['insert_s']:.1f} s, {n / results['insert_s']:,.0f} chunks/s"
        f"   (target <= 20 s at 50,000; the client's JSON encoding, not timed: {results['encode_s']:.1f} s)"
    )
    exact_p50, exact_p95 = _percentiles(results["exact_timings"])
    provider_p50, provider_p95 = _percentiles(results["provider_timings"])
    print(f"baseline, numpy brute force in memory:      p50 {exact_p50:6.1f} ms  p95 {exact_p95:6.1f} ms")
    print(
        f"provider search ({args.provider:10}, exact): p50 {provider_p50:6.1f} ms  p95 {provider_p95:6.1f} ms"
        f"   ratio to numpy {provider_p50 / exact_p50:.2f}   (target p50 <= 10 ms)"
    )
    for mode in ("vector", "keyword", "hybrid"):
        p50, p95 = _percentiles(results[mode]["timings"])
        quality = (
            f"recall@10 {results['recall']:.3f} (target >= 0.98)"
            if mode == "vector"
            else f"target chunk in top 10: {results[mode]['hit_rate']:.3f}"
        )
        print(f"end to end over HTTP, {mode:7}:            p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   {quality}")
    print(
        f"  (of which embedding the query over HTTP, p50 {results['embed_query']:.1f} ms;"
        f" raw embed() in this process, p50 {results['raw_embed_query']:.1f} ms)"
    )
    p50, p95 = single_p50, _ = _percentiles(results["search"]["timings"])
    print(
        f"POST /v1/vector_stores/{{id}}/search:        p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   "
        f"recall@10 {results['search_recall']:.3f}   (target p50 <= 15 ms, recall >= 0.99)"
    )
    concurrent = results["concurrent"]
    p50, p95 = _percentiles(concurrent["timings"])
    print(
        f"  {concurrent['clients']} clients at once:                   p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   "
        f"{concurrent['per_s']:.0f} searches/s (one client: {1000 / single_p50:.0f}/s)"
    )
    if "ingest" not in results:
        return
    ingest = results["ingest"]
    ingest_rate, raw_rate = ingest["chunks"] / ingest["seconds"], ingest["chunks"] / ingest["raw_s"]
    print(
        f"ingestion: {ingest['files']} files, {ingest['chunks']} chunks in {ingest['seconds']:.1f} s = "
        f"{ingest_rate:.1f} chunks/s; raw embed() of the same chunks {raw_rate:.1f} chunks/s"
    )
    print(f"ingestion ratio to raw embedding: {ingest_rate / raw_rate:.3f}   (target >= 0.8)")


if __name__ == "__main__":
    sys.exit(main())
