"""The examples in the SDKs' READMEs work: the Python one is run against a real `pocketstack run`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.process import start

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def test_the_python_sdks_readme_example_runs(home: Path) -> None:
    readme = (ROOT / "sdks" / "python" / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    server = start(home)
    try:
        code = example.replace("http://127.0.0.1:8321", server.base_url)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    answer, streamed = run.stdout.split("\n", 1)
    assert answer.strip() and answer.strip() == streamed.strip()  # greedy: the stream says the same
