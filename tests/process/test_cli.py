"""The command line as a user meets it: clear messages, exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pocketstack import LLAMA_STACK_VERSION, __version__
from tests.support.process import environment, pocketstack, start

pytestmark = pytest.mark.process


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pocketstack(*args), env=env or environment(home), capture_output=True, text=True, timeout=60, check=False
    )


def test_version(home: Path) -> None:
    result = run_cli(home, "version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pocketstack {__version__} (Llama Stack API {LLAMA_STACK_VERSION})"


def test_providers_of_the_default_distribution(home: Path) -> None:
    result = run_cli(home, "providers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["API", "PROVIDER", "ID", "PROVIDER", "TYPE"]
    assert lines[1].split() == ["inference", "llama-cpp", "inline::llama-cpp"]
    assert lines[2].split() == ["files", "localfs", "inline::localfs"]
    assert lines[3].split() == ["vector_io", "sqlite-vec", "inline::sqlite-vec"]


def test_second_instance_on_the_same_port_is_refused(home: Path) -> None:
    first = start(home)
    try:
        result = run_cli(home, "run", "--port", str(first.port))
        assert result.returncode == 1
        assert f"port {first.port} on 127.0.0.1 is already in use" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        assert first.stop() == 0


def test_invalid_config_names_key_and_line(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("version: 2\napis: [inference]\nserver:\n  port: 8321\n  hots: 0.0.0.0\n")
    result = run_cli(home, "run", str(config))
    assert result.returncode == 1
    assert f"{config} line 5: server.hots: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_and_unknown_distribution(home: Path, tmp_path: Path) -> None:
    missing = run_cli(home, "run", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    unknown = run_cli(home, "run", "nosuchdistro")
    assert unknown.returncode == 1 and "neither a distribution (edge" in unknown.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; a file in the way is tested instead")
def test_unwritable_home_is_explained(home: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli(locked / "home", "run", env=environment(locked / "home"))
    assert result.returncode == 1 and "POCKETSTACK_HOME" in result.stderr


def test_home_that_is_a_file_is_explained(tmp_path: Path) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    result = run_cli(home, "run", "--port", "0")
    assert result.returncode == 1
    assert "POCKETSTACK_HOME" in result.stderr and "Traceback" not in result.stderr


def test_port_out_of_range_is_refused(home: Path) -> None:
    result = run_cli(home, "run", "--port", "70000")
    assert result.returncode == 2 and "not a TCP port" in result.stderr


def test_a_registered_model_that_cannot_load_stops_the_server_with_its_reason(home: Path, tmp_path: Path) -> None:
    # Checked after the server listens (the heavy half of start-up), it must still end the run.
    config = tmp_path / "missing-model.yaml"
    config.write_text(
        "version: 2\napis: [inference]\n"
        "providers:\n  inference:\n  - {provider_id: llama-cpp, provider_type: 'inline::llama-cpp', config: {}}\n"
        f"registered_resources:\n  models:\n  - {{model_id: gone, provider_model_id: {tmp_path / 'gone.gguf'}}}\n"
        "server: {port: 0}\n"
    )
    result = run_cli(home, "run", str(config))
    assert result.returncode == 1, result.stderr
    assert "registered_resources.models[0] (gone)" in result.stderr and "Traceback" not in result.stderr
