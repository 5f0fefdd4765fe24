"""`pocketstack traces`: the local store of a home read while it may be in use (read-only), the last
traces newest first as trees with durations on 80 columns, one trace with --trace, nothing recorded yet;
and the same trees from a running server's Telemetry API (--url), as its user sees them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import STACK, create_app
from pocketstack.cli import main
from pocketstack.cli.traces import remote_traces, render
from pocketstack.storage import open_database
from pocketstack.storage.owners import Owner
from pocketstack.storage.spans import SpanStore
from tests.support.config import edge_with
from tests.support.traces import chat_request
from tests.support.users import As, with_test_users

NOW = time.time()


def seeded_home(home: Path) -> tuple[list[Any], list[Any]]:
    older, newer = chat_request(NOW - 60), chat_request(NOW - 5, tokens=(7, 3), status_code=500)
    database = open_database(home / "edge" / "state.db")  # where the edge distribution keeps its state
    try:
        SpanStore(database).add_spans_blocking([*older, *newer])
    finally:
        database.close()
    return older, newer


def test_last_traces_as_trees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETSTACK_HOME", "/nonexistent")  # --home wins (and the test restores it)
    older, newer = seeded_home(tmp_path)
    assert main(["traces", "--home", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"trace {newer[0].trace_id}")
    assert lines[1].split() == ["POST", "/v1/chat/completions", "500", "ERROR", "412.3", "ms"]
    assert lines[2].split() == ["Inference.openai_chat_completion", "409.0", "ms"] and lines[2].startswith("  I")
    assert lines[3].split() == ["chat", "SmolLM2-135M-Instruct", "in=7", "out=3", "tokens", "405.1", "ms"]
    assert lines[3].startswith("    chat")
    assert lines[5].endswith(f"trace {older[0].trace_id}") and "in=12 out=40 tokens" in lines[8]
    assert all(len(line) <= 80 for line in lines)

    assert main(["traces", "--home", str(tmp_path), "--limit", "1"]) == 0
    assert older[0].trace_id not in capsys.readouterr().out
    assert main(["traces", "--home", str(tmp_path), "--trace", older[0].trace_id]) == 0
    one = capsys.readouterr().out
    assert older[0].trace_id in one and newer[0].trace_id not in one
    assert main(["traces", "--home", str(tmp_path), "--trace", "f" * 32]) == 1
    assert "no trace" in capsys.readouterr().err


def test_a_home_without_traces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETSTACK_HOME", "/nonexistent")
    assert main(["traces", "--home", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "no traces recorded yet\n"
    assert not (tmp_path / "edge" / "state.db").exists()  # reading creates nothing


async def test_reads_beside_a_running_server(tmp_path: Path, aiohttp_client: Callable[..., Any]) -> None:
    """The store of a home a server has open, read over HTTP as the server's user and straight from the file."""
    app = with_test_users(create_app(edge_with(telemetry={"enabled": False})))
    server: TestClient[Any, Any] = await aiohttp_client(app)
    assert (await As(server, None).call("GET", "/v1/models"))[0] == 200
    alices = chat_request(NOW - 3, Owner("alice", {"roles": ["writer"], "teams": ["red"]}))
    bobs = chat_request(NOW - 1, Owner("bob", {"roles": ["reader"], "teams": ["blue"]}))
    await asyncio.to_thread(SpanStore(server.app[STACK].database).add_spans_blocking, [*alices, *bobs])

    # the test header stands for an API key's user (tests/support/users.py)
    session_headers = {"X-Test-User": "alice"}
    found = await remote_traces(str(server.make_url("")), None, 10, None, session_headers)
    assert [root.trace_id for root, _ in found] == [alices[0].trace_id]
    text = render(found)
    assert "chat SmolLM2-135M-Instruct  in=12 out=40 tokens" in text and "405.1 ms" in text
    whole = await remote_traces(str(server.make_url("")), None, 10, alices[0].trace_id, session_headers)
    assert render(whole) == text
