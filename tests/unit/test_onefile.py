"""The one-file launcher (onefile/launcher.c) and its packer, on a tiny stand-in for the onedir build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.config import REPO

sys.path.insert(0, str(REPO / "onefile"))
import pack

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="needs a C compiler")


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    onedir = tmp_path / "onedir"
    (onedir / "_internal" / "lib").mkdir(parents=True)
    program = onedir / "pocketstack"
    program.write_text('#!/bin/sh\necho "args:$*"\ncat "$(dirname "$0")/_internal/lib/data.txt"\n')
    program.chmod(0o755)
    (onedir / "_internal" / "lib" / "data.txt").write_text("hello from the payload\n" * 1000)
    (onedir / "_internal" / "lib" / "copy.txt").write_text("hello from the payload\n" * 1000)  # a twin
    (onedir / "_internal" / "model.gguf").write_bytes(os.urandom(4096))
    output = tmp_path / "pocketstack"
    pack.pack(onedir, output, os.environ.get("CC", "cc"))
    return output


def run(binary: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "POCKETSTACK_CACHE": str(cache)}
    return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_unpacks_once_and_execs_with_the_arguments(binary: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run(binary, cache, "run", "--port", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("args:run --port 1\nhello from the payload\n")
    (build,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    data = build / "_internal" / "lib" / "data.txt"
    stamp = data.stat().st_mtime_ns
    lib = build / "_internal" / "lib"
    assert os.readlink(lib / "data.txt") == "copy.txt"  # identical content stored once, linked
    assert (build / "_internal" / "model.gguf").stat().st_size == 4096
    second = run(binary, cache, "version")
    assert second.returncode == 0 and second.stdout.startswith("args:version\n")
    assert data.stat().st_mtime_ns == stamp  # not unpacked again
    assert sorted(p.name for p in cache.iterdir()) == [build.name]  # no staging folder left


def test_concurrent_first_launches_all_succeed(binary: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(binary, cache, "x"), range(4)))
    assert all(r.returncode == 0 and "hello from the payload" in r.stdout for r in results)
    assert len([p for p in cache.iterdir()]) == 1


def test_a_cache_folder_others_can_write_is_refused(binary: Path, tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    result = run(binary, cache, "x")
    assert result.returncode != 0
    assert "refusing a cache folder that is not a private folder of this user" in result.stderr


def test_an_incomplete_unpack_is_redone(binary: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run(binary, cache, "x").returncode == 0
    (build,) = list(cache.iterdir())
    (build / ".complete").unlink()  # as if the marker never made it to disk
    (build / "_internal" / "lib" / "data.txt").write_text("corrupt")
    result = run(binary, cache, "x")
    assert result.returncode == 0 and "hello from the payload" in result.stdout


def test_a_truncated_binary_says_so(binary: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_bytes(binary.read_bytes()[:-200])
    broken.chmod(0o755)
    result = run(broken, tmp_path / "cache", "x")
    assert result.returncode != 0 and "payload" in result.stderr
