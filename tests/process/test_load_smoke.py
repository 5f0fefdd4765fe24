"""A short bounded run of the load mix (bench/load.py, issue 21 §3) against a real `pocketstack run edge`:
8 clients for 15 s mixing chat streams, chat, embeddings, searches, ingested uploads and responses with
file_search. Every answer is checked; only 429s with Retry-After may fail, and the server holds no more
file descriptors after the run than after a warm-up of the same mix. No timings are asserted."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.support import load
from tests.support.process import environment, start

pytestmark = [pytest.mark.process, pytest.mark.slow]

CLIENTS = 8
WARMUP_S = 5.0
RUN_S = 15.0
TIMEOUT_S = 600.0  # a request answered later than this is a hung one: a failure, not a slow machine
QUIET_S = 2.0  # after the clients close: the server sees their connections end


async def drive(base_url: str, pid: int) -> tuple[load.Tally, load.Sample, load.Sample, str]:
    mix = await load.prepare(load.client_for(base_url, TIMEOUT_S))
    tally = load.Tally(echo=False)
    for kind in load.KINDS:  # one of each alone: the models load
        await load.once(mix, kind, tally)
    await load.phase(mix, CLIENTS, WARMUP_S, 10_000, seed=1, tally=tally)
    await mix.client.close()
    await asyncio.sleep(QUIET_S)
    before, held = load.sample(pid), load.fd_targets(pid)

    mix.client = load.client_for(base_url, TIMEOUT_S)
    await load.phase(mix, CLIENTS, RUN_S, 10_000, seed=2, tally=tally)
    await mix.client.close()
    await asyncio.sleep(QUIET_S)
    after, now = load.sample(pid), load.fd_targets(pid)
    grown = {target: now[target] - held[target] for target in now if now[target] > held[target]}
    return tally, before, after, f"descriptors that grew: {grown}"


def test_the_load_mix_has_no_unexpected_errors_and_leaks_no_descriptors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = start(home, ["edge"], env=environment(home, POCKETSTACK_LOG_LEVEL="WARNING"))
    try:
        tally, before, after, grown = asyncio.run(drive(server.base_url, server.process.pid))
    finally:
        code = server.stop(signal.SIGTERM)
    assert [f"{f.kind}: {f.what}" for f in tally.failures] == []
    assert sum(len(done) for done in tally.latencies.values()) >= len(load.KINDS), tally.latencies  # it ran
    assert after.fds <= before.fds, grown
    assert code == 0, server.output()[-4000:]
