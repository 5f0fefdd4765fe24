"""`pocketstack eval run <benchmark> --model <id>`: run a benchmark and print its scores.

It drives the Eval API over HTTP, as any client would: of a server at `--url`, else of the local
server when one answers on the config's port (two servers on one state database would both
resume its unfinished jobs), else of one it starts in-process on a free loopback port, offline.
The job runs in the background on the server (`background: true`), with a progress line from
its status; Ctrl-C cancels it. The benchmark's metadata supplies the candidate settings its
scoring expects (system message, max_tokens, scoring params) unless the command line gives them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import quote

import aiohttp

from pocketstack.config import StackConfig

Serve = Callable[..., Coroutine[Any, Any, None]]
POLL_S = 0.5


class EvalCommandError(Exception):
    """What the server answered, said for the command line."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _answers(session: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with session.get(f"{base}/v1/health", timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


@contextlib.asynccontextmanager
async def _server(
    session: aiohttp.ClientSession, url: str | None, load: Callable[[], StackConfig], serve: Serve
) -> AsyncIterator[str]:
    """The base URL of the server to use; one started here stops on leaving."""
    if url is not None:
        yield url.rstrip("/")
        return
    config = load()
    local = f"http://127.0.0.1:{config.server.port}"
    if await _answers(session, local):
        print(f"using the server at {local}", file=sys.stderr)
        yield local
        return
    config.server.host, config.server.port = "127.0.0.1", _free_port()
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(config, stop, handle_signals=False), name="pocketstack-eval-server")
    base = f"http://127.0.0.1:{config.server.port}"
    try:
        while not await _answers(session, base):
            if serving.done():
                serving.result()  # start-up failed: its error says why
                raise EvalCommandError("the in-process server stopped before it answered")
            await asyncio.sleep(0.1)
        yield base
    finally:
        stop.set()
        await asyncio.gather(serving, return_exceptions=True)


async def _call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as response:
        if response.status == 204:
            return None
        payload = await response.json(content_type=None)
        if response.status >= 400:
            error = payload.get("error", payload) if isinstance(payload, dict) else payload
            message = error.get("message", error) if isinstance(error, dict) else error
            raise EvalCommandError(f"{response.status}: {message}")
        return payload


def _candidate(args: argparse.Namespace, metadata: dict[str, Any]) -> dict[str, Any]:
    max_tokens = args.max_tokens or metadata.get("max_tokens") or 512
    candidate: dict[str, Any] = {
        "type": "model",
        "model": args.model,
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": max_tokens},
    }
    system = args.system if args.system is not None else metadata.get("system_message")
    if system:
        candidate["system_message"] = {"role": "system", "content": system}
    return candidate


def _progress(done: int, total: int, started: float) -> None:
    width = 30
    filled = width * done // total if total else width
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows  {time.monotonic() - started:6.1f} s"
    print(line, end="", file=sys.stderr, flush=True)


def _table(scores: dict[str, Any], rows: int, seconds: float) -> None:
    lines = [("SCORING FUNCTION", "METRIC", "VALUE")]
    for fn, result in scores.items():
        for aggregation, metrics in result.get("aggregated_results", {}).items():
            for name, value in metrics.items() if isinstance(metrics, dict) else [(aggregation, metrics)]:
                counted = name.startswith("num_") and isinstance(value, float) and value.is_integer()
                shown = str(int(value)) if counted else f"{value:.4f}" if isinstance(value, float) else str(value)
                lines.append((fn, name, shown))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(f"{rows} rows in {seconds:.1f} s")


async def _run_job(session: aiohttp.ClientSession, base: str, args: argparse.Namespace) -> int:
    benchmark_url = f"{base}/v1alpha/eval/benchmarks/{quote(args.benchmark, safe='')}"
    benchmark = await _call(session, "GET", benchmark_url)
    metadata = benchmark.get("metadata") or {}
    config: dict[str, Any] = {"eval_candidate": _candidate(args, metadata)}
    if isinstance(metadata.get("scoring_params"), dict):
        config["scoring_params"] = metadata["scoring_params"]
    if args.limit is not None:
        config["num_examples"] = args.limit
    started = time.monotonic()
    job = await _call(session, "POST", f"{benchmark_url}/jobs", {"benchmark_config": config, "background": True})
    job_url = f"{benchmark_url}/jobs/{job['job_id']}"
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        while job["status"] in ("scheduled", "in_progress"):
            _progress(job.get("rows_done", 0), job.get("rows_total", 0), started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupted.wait(), POLL_S)
            if interrupted.is_set():
                await _call(session, "DELETE", job_url)
                print(f"\njob {job['job_id']} cancelled", file=sys.stderr)
                return 130
            job = await _call(session, "GET", job_url)
        _progress(job.get("rows_done", 0), job.get("rows_total", 0), started)
        print(file=sys.stderr)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if job["status"] != "completed":
        raise EvalCommandError(f"job {job['job_id']} {job['status']}: {job.get('error') or 'no reason given'}")
    result = await _call(session, "GET", f"{job_url}/result")
    print(f"benchmark {args.benchmark}, model {args.model}, job {job['job_id']} (rows: {job['results_dataset_id']})")
    _table(result["scores"], len(result["generations"]), time.monotonic() - started)
    return 0


async def eval_run(args: argparse.Namespace, load: Callable[[], StackConfig], serve: Serve) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as session:
        try:
            async with _server(session, args.url, load, serve) as base:
                return await _run_job(session, base, args)
        except EvalCommandError as exc:
            print(f"pocketstack: error: {exc}", file=sys.stderr)
            return 1
