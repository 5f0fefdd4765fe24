"""The generated Kotlin SDK, compiled with kotlinc and run against a real `pocketstack run`.

kotlinc comes from the npm package kotlin-compiler (installed once per machine under build/, from
the npm registry); one compile per test run: the SDK's sources and tests/process/kotlin/Main.kt,
a scripted program over models, chat, a chat stream, embeddings, an upload, a vector-store search
and a decoded 400.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.config import CHAT_MODEL
from tests.support.process import start

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
COMPILER = "kotlin-compiler@2.4.20"
TOOLS = ROOT / "build" / "kotlin"
KOTLINC = TOOLS / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
SDK = ROOT / "sdks" / "kotlin" / "src" / "main" / "kotlin"


def _kotlinc() -> Path:
    kotlinc = KOTLINC
    if not kotlinc.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to fetch kotlinc (the kotlin-compiler package)"
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), COMPILER], check=True,
                       timeout=600, capture_output=True)  # fmt: skip
    return kotlinc


@pytest.mark.skipif(shutil.which("java") is None, reason="no JVM on this machine (kotlinc and the program need one)")
@pytest.mark.skipif(
    shutil.which("npm") is None and not KOTLINC.exists(), reason="no npm to fetch kotlinc (kotlin-compiler) with"
)
def test_the_kotlin_program_and_the_readme_example_run_against_the_server(
    home: Path, stored_embedding: str, tmp_path: Path
) -> None:
    sources = sorted(SDK.rglob("*.kt"))
    assert {s.name for s in sources} == {"Client.kt", "Json.kt", "Models.kt", "Transport.kt"}
    (example,) = re.findall(r"```kotlin\n(.*?)```", (ROOT / "sdks/kotlin/README.md").read_text(), re.DOTALL)
    kotlinc = _kotlinc()
    server = start(home)
    try:
        # The README's example in a package of its own (both programs have a `main`), at this server's address.
        readme = tmp_path / "Readme.kt"
        readme.write_text("package readme\n\n" + example.replace("http://127.0.0.1:8321", server.base_url))
        jar = tmp_path / "program.jar"
        compiled = subprocess.run(
            [str(kotlinc), *map(str, sources), str(ROOT / "tests/process/kotlin/Main.kt"), str(readme),
             "-include-runtime", "-d", str(jar)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert compiled.returncode == 0, compiled.stderr[-5000:]
        assert "error:" not in compiled.stderr
        run = subprocess.run(
            ["java", "-cp", str(jar), "MainKt", server.base_url, CHAT_MODEL, stored_embedding],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        shown = subprocess.run(["java", "-cp", str(jar), "readme.ReadmeKt"], capture_output=True, text=True,
                               timeout=300)  # fmt: skip
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.strip().endswith("PASSED")
    assert "ok: a 400 decoded: " in run.stdout and "temperature" in run.stdout
    assert shown.returncode == 0, shown.stderr[-3000:]
    answer, streamed = [*shown.stdout.split("\n", 1), ""][:2]
    assert answer.strip() and streamed.strip()  # the answer, then the streamed one
