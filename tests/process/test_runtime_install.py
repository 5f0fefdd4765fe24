"""The install a user gets from `make run`, proven as the user runs it (issue 15).

`make test` installs `[dev]` into .venv, which hid a runtime dependency that only `[dev]`
brought in (httpx): `make run` then died on a fresh machine. This builds a second environment
with the Makefile's own `install` recipe (exactly `make run`'s, never `[dev]`) and drives it with
its own Python (runtime_drive.py, standard library only): every module imports, and a fresh home
serves chat and embeddings with no `models import` first.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.config import REPO

pytestmark = [pytest.mark.process, pytest.mark.slow]

RUNTIME_VENV = REPO / "build" / "runtime-venv"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    subprocess.run(["make", "install", f"VENV={RUNTIME_VENV}"], cwd=REPO, check=True, capture_output=True, timeout=2400)
    work = tmp_path_factory.mktemp("runtime")
    drive = [str(RUNTIME_VENV / "bin" / "python"), str(Path(__file__).with_name("runtime_drive.py")), str(work)]
    result = subprocess.run(drive, capture_output=True, text=True, timeout=900, check=False, cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_the_runtime_install_has_no_dev_packages(observed: dict[str, Any]) -> None:
    # The point of this environment: were pytest (or httpx, via [dev]) here, it would prove nothing.
    for package in ("pytest", "httpx", "openai"):
        probe = [str(RUNTIME_VENV / "bin" / "python"), "-c", f"import {package}"]
        assert subprocess.run(probe, capture_output=True, check=False).returncode != 0, package


def test_every_module_imports_with_runtime_dependencies_only(observed: dict[str, Any]) -> None:
    assert observed["import_failures"] == {}


def test_a_fresh_home_serves_both_default_models_without_an_import_command(observed: dict[str, Any]) -> None:
    assert observed["health"] is True
    assert {"llama-cpp/SmolLM2-135M-Instruct", "llama-cpp/all-MiniLM-L6-v2"} <= set(observed["models"])
    assert "importing the default embedding model" in observed["server_log"]


def test_chat_and_embeddings_work(observed: dict[str, Any]) -> None:
    assert observed["chat"]["status"] == 200 and observed["chat"]["content"]
    assert observed["embedding"] == {"status": 200, "dimensions": 384}


def test_sigterm_stops_it_cleanly(observed: dict[str, Any]) -> None:
    assert observed["sigterm_returncode"] == 0
    assert "Traceback" not in observed["server_log"]
