"""`pocketstack eval run` as a user meets it: offline, on a fresh home, the built-in benchmark on
the default model, a progress line, a results table; against a running server with --url too."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.process import environment, free_port, pocketstack, start

pytestmark = pytest.mark.process

MODEL = "llama-cpp/SmolLM2-135M-Instruct"


def eval_run(home: Path, *args: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
    # A free port for the in-process server's config: a server a developer runs on 8321 is not used.
    env = environment(home, POCKETSTACK_PORT=str(port or free_port()))
    return subprocess.run(
        pocketstack("eval", "run", *args), env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_builtin_benchmark_runs_offline_in_process(home: Path) -> None:
    result = eval_run(home, "pocketstack::multiple-choice", "--model", MODEL, "--limit", "3")
    assert result.returncode == 0, result.stderr
    assert "3/3 rows" in result.stderr and "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"benchmark pocketstack::multiple-choice, model {MODEL}, job 0 (rows: eval-job-0)"
    assert lines[1].split() == ["SCORING", "FUNCTION", "METRIC", "VALUE"]
    metrics = {line.split()[1]: line.split()[2] for line in lines[2:-1]}
    assert set(metrics) == {"accuracy", "num_correct", "num_total"} and metrics["num_total"] == "3"
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0
    assert re.fullmatch(r"3 rows in \d+\.\d s", lines[-1])


def test_against_a_running_server_and_errors_said_plainly(home: Path) -> None:
    server = start(home)
    try:
        result = eval_run(home, "pocketstack::arithmetic", "--model", MODEL, "--limit", "2", "--url", server.base_url)
        assert result.returncode == 0, result.stderr
        assert "job 0" in result.stdout and "basic::regex_parser_math_response" in result.stdout
        unknown = eval_run(home, "nope", "--model", MODEL, "--url", server.base_url)
        assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
        assert "404" in unknown.stderr and "nope" in unknown.stderr
        no_model = eval_run(home, "pocketstack::arithmetic", "--model", "absent", "--url", server.base_url)
        assert no_model.returncode == 1 and "absent" in no_model.stderr and "Traceback" not in no_model.stderr
    finally:
        assert server.stop() == 0
