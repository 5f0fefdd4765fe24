"""Load and soak: many clients at once mixing every kind of request, against the same requests one
at a time on the idle server in the same run.

A real server (`pocketstack run edge` on a free loopback port, a fresh POCKETSTACK_HOME, the default
models) gets, through the official `openai` client (AsyncOpenAI over HTTP, no retries of its own):
1. baseline: `--baseline` requests of each kind one at a time on the idle server (after one of each
   to load the models): streamed chat, chat, embeddings, vector store search, an upload ingested into
   a vector store, a response with file_search (tests/support/load.py has the mix);
2. warm-up: `--warmup` seconds of the load, then the clients close and the server's RSS, open file
   descriptors and threads are read from /proc/<pid> once it is quiet;
3. load: `--clients` clients (default 32) for `--duration` seconds (default 300) or `--max-requests`,
   each picking kinds at random by weight; under load the process is sampled every `--every`
   seconds; then the clients close and it is read again once quiet.

Reported: requests per kind, 429s (expected backpressure, with Retry-After) counted apart, every
other failure printed; p50/p95 latency per kind and p50 against the baseline; RSS, fds and threads
at warm-up and end. Targets (issue 21 §3): 0 unexpected errors, RSS growth < 10% after warm-up, no
leaked fds or threads (end <= warm-up). Exits 1 when one is missed.

    python bench/load.py [--duration 300] [--clients 32] [--warmup 30] [--soak]   # --soak: 1 h, sampled every 2 min
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support import load
from tests.support.process import Server, environment, start

QUIET_S = 2.0  # after the clients close: the server sees their connections end and finishes their work
RSS_GROWTH_TARGET = 0.10


async def quiet_sample(server: Server) -> load.Sample:
    await asyncio.sleep(QUIET_S)
    return load.sample(server.process.pid)


async def baseline(mix: load.Mix, repeats: int) -> load.Tally:
    """One of each kind first (the models load, the stores' first pages are read), then the measured ones."""
    tally = load.Tally()
    for kind in load.KINDS:
        await load.once(mix, kind, tally)
    tally.latencies.clear()
    for _ in range(repeats):
        for kind in load.KINDS:
            await load.once(mix, kind, tally)
    return tally


async def sampler(server: Server, every: float, started: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(f"  {time.monotonic() - started:6.0f} s: {load.sample(server.process.pid)}", flush=True)


async def drive(server: Server, args: argparse.Namespace) -> int:
    mix = await load.prepare(load.client_for(server.base_url, args.timeout))
    idle = await baseline(mix, args.baseline)
    await mix.client.close()
    print(f"idle after the baseline: {await quiet_sample(server)}", flush=True)

    warm = load.Tally()
    mix.client = load.client_for(server.base_url, args.timeout)
    print(f"\nwarm-up: {args.clients} clients for {args.warmup:.0f} s", flush=True)
    await load.phase(mix, args.clients, args.warmup, args.max_requests, args.seed, warm)
    await mix.client.close()
    before = await quiet_sample(server)
    fds_before = load.fd_targets(server.process.pid)
    print(f"after warm-up ({warm.sent} requests): {before}", flush=True)

    tally = load.Tally()
    mix.client = load.client_for(server.base_url, args.timeout)
    print(
        f"\nload: {args.clients} clients for {args.duration:.0f} s (at most {args.max_requests} requests)", flush=True
    )
    started = time.monotonic()
    watching = asyncio.create_task(sampler(server, args.every, started))
    await load.phase(mix, args.clients, args.duration, args.max_requests, args.seed + 1, tally)
    wall = time.monotonic() - started
    watching.cancel()
    await mix.client.close()
    after = await quiet_sample(server)
    fds_after = load.fd_targets(server.process.pid)
    print(f"after the load ({tally.sent} requests in {wall:.0f} s): {after}", flush=True)
    return report(idle, warm, tally, wall, before, after, fds_before, fds_after)


def report(
    idle: load.Tally,
    warm: load.Tally,
    tally: load.Tally,
    wall: float,
    before: load.Sample,
    after: load.Sample,
    fds_before: Counter[str],
    fds_after: Counter[str],
) -> int:
    print(
        f"\n{'kind':>12} {'ok':>6} {'429':>5} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'idle p50':>9} {'x idle':>7}"
    )
    for kind in load.KINDS:
        done = tally.latencies.get(kind, [])
        failed = sum(1 for f in tally.failures if f.kind == kind)
        p50 = load.percentile(done, 0.5) * 1000 if done else float("nan")
        p95 = load.percentile(done, 0.95) * 1000 if done else float("nan")
        base = statistics.median(idle.latencies[kind]) * 1000 if idle.latencies.get(kind) else float("nan")
        print(
            f"{kind:>12} {len(done):>6} {tally.throttled[kind]:>5} {failed:>6} {p50:>8.0f} {p95:>8.0f} "
            f"{base:>9.0f} {p50 / base:>7.2f}"
        )
    answered = sum(len(v) for v in tally.latencies.values())
    print(f"{answered / wall:.1f} answered requests/s; {sum(tally.throttled.values())} throttled (429 + Retry-After)")
    cut = sum((idle.cut + warm.cut + tally.cut).values())
    print(f"{cut} responses whose forced file_search call max_output_tokens cut off (answered as text; not counted)")

    failures = idle.failures + warm.failures + tally.failures
    for what, count in Counter(f"{f.kind}: {f.what}" for f in failures).most_common(20):
        print(f"  {count} x {what}")
    growth = (after.rss_kb - before.rss_kb) / before.rss_kb
    grown = {k: fds_after[k] - fds_before[k] for k in fds_after if fds_after[k] > fds_before[k]}
    checks = {
        f"unexpected errors: {len(failures)} (baseline, warm-up and load; target 0)": not failures,
        f"RSS {before.rss_kb / 1024:.1f} -> {after.rss_kb / 1024:.1f} MiB, {growth:+.1%} (target < 10%)": growth
        < RSS_GROWTH_TARGET,
        f"open fds {before.fds} -> {after.fds} (target: no growth){f'; grew: {grown}' if grown else ''}": after.fds
        <= before.fds,
        f"threads {before.threads} -> {after.threads} (target: no growth)": after.threads <= before.threads,
    }
    for line, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'} {line}")
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, help="seconds of load (default 300; 3600 with --soak)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--warmup", type=float, help="seconds of load before the first sample (default 30; 120 with --soak)"
    )
    parser.add_argument("--max-requests", type=int, default=200_000, help="a bound on the requests of each phase")
    parser.add_argument("--baseline", type=int, default=3, help="idle requests of each kind")
    parser.add_argument("--every", type=float, help="seconds between samples under load (default 60; 120 with --soak)")
    parser.add_argument("--soak", action="store_true", help="a long run: 1 h, a sample every 2 minutes")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a request may take before it counts as hung"
    )
    args = parser.parse_args()
    args.duration = args.duration or (3600.0 if args.soak else 300.0)
    args.warmup = args.warmup or (120.0 if args.soak else 30.0)
    args.every = args.every or (120.0 if args.soak else 60.0)
    with tempfile.TemporaryDirectory(prefix="pocketstack-bench-") as tmp:
        home = Path(tmp) / "home"
        server = start(home, ["edge"], env=environment(home, POCKETSTACK_LOG_LEVEL="WARNING"))
        print(f"server {server.base_url} (pid {server.process.pid}); {server_sample(server)}", flush=True)
        try:
            return asyncio.run(drive(server, args))
        finally:
            code = server.stop()
            if code != 0:
                print(f"the server exited {code}:\n{server.output()[-4000:]}")


def server_sample(server: Server) -> str:
    return f"at start: {load.sample(server.process.pid)}"


if __name__ == "__main__":
    sys.exit(main())
