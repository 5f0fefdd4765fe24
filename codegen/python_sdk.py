"""The Python SDK in sdks/python, written by openapi-python-client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("python_sdk.yaml")


def tool_environment() -> dict[str, str]:
    """The environment for generator tools: this interpreter's scripts (ruff) first, no caches."""
    scripts = str(Path(sys.executable).parent)
    path = scripts + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "PATH": path, "RUFF_NO_CACHE": "true"}


def write_python_sdk(spec_path: Path, target: Path, header: str) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--path", str(spec_path),
            "--output-path", str(target),
            "--config", str(CONFIG),
            "--meta", "setup",
            "--overwrite",
        ],
        check=True,
        env=tool_environment(),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for module in sorted(target.rglob("*.py")):
        module.write_text(header + module.read_text(encoding="utf-8"), encoding="utf-8")
