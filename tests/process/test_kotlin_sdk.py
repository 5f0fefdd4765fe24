"""The generated Kotlin SDK, compiled with kotlinc and run against a real `pocketstack run`.

kotlinc comes from the npm package kotlin-compiler (installed once per machine under build/, from
the npm registry); one compile per test run: the SDK's sources and tests/process/kotlin/Main.kt,
a scripted program over models, chat, a chat stream, embeddings, an upload, a vector-store search
and a decoded 400.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CHAT_MODEL
from tests.process.server import start

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
COMPILER = "kotlin-compiler@2.4.20"
TOOLS = ROOT / "build" / "kotlin"
SDK = ROOT / "sdks" / "kotlin" / "src" / "main" / "kotlin"


def _kotlinc() -> Path:
    kotlinc = TOOLS / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
    if not kotlinc.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to fetch kotlinc (the kotlin-compiler package)"
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), COMPILER], check=True,
                       timeout=600, capture_output=True)  # fmt: skip
    return kotlinc


@pytest.mark.skipif(shutil.which("java") is None, reason="no JVM on this machine (kotlinc and the program need one)")
def test_the_kotlin_program_runs_against_the_server(home: Path, stored_embedding: str, tmp_path: Path) -> None:
    sources = sorted(SDK.rglob("*.kt"))
    assert {s.name for s in sources} == {"Client.kt", "Json.kt", "Models.kt", "Transport.kt"}
    jar = tmp_path / "program.jar"
    compiled = subprocess.run(
        [str(_kotlinc()), *map(str, sources), str(ROOT / "tests/process/kotlin/Main.kt"), "-include-runtime",
         "-d", str(jar)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr[-5000:]
    assert "error:" not in compiled.stderr
    server = start(home)
    try:
        run = subprocess.run(
            ["java", "-jar", str(jar), server.base_url, CHAT_MODEL, stored_embedding],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.strip().endswith("PASSED")
    assert "ok: a 400 decoded: " in run.stdout and "temperature" in run.stdout
