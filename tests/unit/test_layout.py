"""The layout's rules that import-linter does not see: file sizes, the top level, how tests import."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from tests.support.config import REPO

MAX_LINES = 600
# The composition root: everything else in runtime/ sits in a folder named for its concept.
TOP_LEVEL = {"__init__.py", "__main__.py", "app.py", "assembly.py", "cli.py", "config.py", "errors.py"}


def _tracked_python() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True)
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [REPO / name for name in (listed.stdout + untracked.stdout).split() if (REPO / name).exists()]


def _hand_written(path: Path) -> bool:
    parts = path.relative_to(REPO).parts
    return parts[0] != "sdks" and "_generated" not in parts


def test_no_hand_written_python_file_exceeds_600_lines() -> None:
    too_long = {
        str(path.relative_to(REPO)): lines
        for path in _tracked_python()
        if _hand_written(path) and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}


def test_the_runtime_top_level_holds_only_the_composition_root() -> None:
    loose = {p.name for p in (REPO / "runtime").glob("*.py")} - TOP_LEVEL
    assert loose == set()


def test_no_test_module_imports_another() -> None:
    offenders = []
    for path in _tracked_python():
        if path.relative_to(REPO).parts[0] not in ("tests", "bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("tests.") and any(part.startswith("test_") for part in name.split(".")):
                    offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []
