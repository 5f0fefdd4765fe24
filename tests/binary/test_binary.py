"""The one-file binary, built by `make binary`, run where nothing of the build is around (issue 4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.config import REPO

pytestmark = [pytest.mark.binary, pytest.mark.slow]


def _can_isolate_network() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # Built from a runtime-only environment (make run's install), as a user builds it: the dev
    # environment's extra packages would hide a missing runtime dependency inside the binary.
    venv = f"VENV={REPO / 'build' / 'runtime-venv'}"
    subprocess.run(["make", "binary", venv, f"DIST={dist}"], cwd=REPO, check=True, capture_output=True, timeout=1800)
    return dist / "pocketstack"


@pytest.fixture(scope="module")
def observed(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("clean")
    drive = [sys.executable, str(Path(__file__).with_name("drive.py")), str(binary), str(work)]
    if _can_isolate_network():  # no network at all: loopback only, brought up inside the namespace
        drive = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *drive]
    result = subprocess.run(drive, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_runs_without_network_where_it_can_be_cut(observed: dict[str, Any]) -> None:
    if not _can_isolate_network():
        pytest.skip("unshare -rn is not available here: the run had the machine's network")
    assert observed["network_reachable"] is False


def test_version_and_models_list_work_like_the_installed_cli(observed: dict[str, Any]) -> None:
    assert observed["version"]["returncode"] == 0 and observed["version"]["stdout"].startswith("pocketstack ")
    listing = observed["models_list"]
    assert listing["returncode"] == 0
    assert "SmolLM2-135M-Instruct" in listing["stdout"] and "all-MiniLM-L6-v2" in listing["stdout"]


def test_serves_the_embedded_models(observed: dict[str, Any]) -> None:
    assert {"llama-cpp/SmolLM2-135M-Instruct", "llama-cpp/all-MiniLM-L6-v2"} <= set(observed["models"])
    assert observed["chat"]["content"] and observed["chat"]["finish_reason"] in ("stop", "length")
    assert observed["stream"]["chunks"] > 2 and observed["stream"]["text"]
    assert observed["embeddings"] == [384, 384]
    assert observed["file_roundtrip"] == "offline notes"
    assert observed["vector_search"] == "The lighthouse lamp guides ships."  # apsw + vec0 inside the binary
    assert observed["moderation"] == ["email", "secret"]  # detect-secrets finds its plugins inside the binary


def test_records_traces_and_metrics(observed: dict[str, Any]) -> None:
    assert observed["traceresponse"].startswith("00-")  # W3C: the trace the answer was recorded in
    assert observed["metrics_has_gen_ai"] is True
    traces = observed["traces"]
    assert traces["returncode"] == 0, traces["stderr"]
    trace_id = observed["traceresponse"].split("-")[1]
    assert trace_id in traces["stdout"] and "POST /v1/chat/completions 200" in traces["stdout"]


def test_refuses_a_second_instance_on_the_same_port(observed: dict[str, Any]) -> None:
    second = observed["second_instance"]
    assert second["returncode"] == 1
    assert "already in use" in second["stderr"] and "Traceback" not in second["stderr"]


def test_exits_cleanly_on_sigterm(observed: dict[str, Any]) -> None:
    assert observed["sigterm_returncode"] == 0
    assert "Traceback" not in observed["server_log"]
