"""llama-stack-client 0.2 (the last with the Agents API in Python 3.11) against a real `pocketstack run`.

It cannot share the test venv with the current client, so it gets a venv of its own under build/
(made once per machine, from the package registry). Its requests go to the /v1/agents paths of
Llama Stack 0.2, which PocketStack still answers, version check included.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support.config import CHAT_MODEL
from tests.support.process import start

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
CLIENT = "llama-stack-client==0.2.12"
VENV = ROOT / "build" / "clients" / "llama-stack-client-0.2.12"


def _python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        # fire and requests: imported by the 0.2 client's own lib/ at import time, not declared.
        subprocess.run([str(python), "-m", "pip", "install", "-q", CLIENT, "fire", "requests"], check=True,
                       timeout=600)  # fmt: skip
    return python


def test_the_0_2_clients_agent_helper_runs_client_tools_and_streams(home: Path) -> None:
    python = _python()
    server = start(home)
    try:
        run = subprocess.run(
            [str(python), str(ROOT / "tests" / "process" / "legacy" / "agent_0_2.py"), server.base_url, CHAT_MODEL],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:] + server.output()
        seen = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    assert seen["steps"] == ["inference", "tool_execution", "inference"]  # the call awaited, ran, resumed
    # The 0.2 helper sends a client tool's result JSON-encoded; it reached the model as sent.
    assert [json.loads(content) for content in seen["tool_responses"]] == ["18 C and sunny in Paris"]
    assert seen["turns"] == 2 and seen["output"]
    assert seen["groups"] == ["builtin::rag", "builtin::websearch"]
    assert seen["tools"] == [["knowledge_search", ["query"]]]
    assert seen["searched"][0] == 401 and "tavily_search_api_key" in seen["searched"][1]  # no key here: an answer
    logged = "\n".join(seen["logged"])
    assert "tool_execution> Tool:get_weather" in logged and "18 C and sunny in Rome" in logged
