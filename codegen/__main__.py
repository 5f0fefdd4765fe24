"""`python -m codegen [--check]`: regenerate everything derived from the spec, or check for drift."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from codegen.header import SOURCE, header
from codegen.kotlin import write_kotlin_sdk
from codegen.models import write_models
from codegen.python_sdk import tool_environment, write_python_sdk
from codegen.server import emit_operations, emit_protocols, emit_routes
from codegen.spec import load_spec
from codegen.swift import write_swift_sdk

REPO = Path(__file__).resolve().parent.parent
# Every folder below is wholly generated: regeneration replaces it, the check compares it whole.
OUTPUTS = ("runtime/_generated", "sdks/python", "sdks/kotlin", "sdks/swift")


def generate(spec_path: Path, out: Path) -> None:
    """Write every output folder under `out`, from the spec alone."""
    spec = load_spec(spec_path)
    server = out / "runtime/_generated"
    server.mkdir(parents=True)
    (server / "__init__.py").write_text(header() + '"""Code generated from the spec."""\n')
    write_models(spec, header(), server / "models.py")
    (server / "protocols.py").write_text(emit_protocols(spec, header()))
    (server / "operations.py").write_text(emit_operations(spec, header()))
    (server / "routes.py").write_text(emit_routes(spec, header()))
    _format(server / "protocols.py", server / "operations.py", server / "routes.py")
    write_python_sdk(spec_path, out / "sdks/python", header())
    write_kotlin_sdk(spec, out / "sdks/kotlin", header("//"))
    write_swift_sdk(spec, out / "sdks/swift", header("//"))


def _format(*files: Path) -> None:
    ruff = [sys.executable, "-m", "ruff"]
    settings = ["--isolated", "--line-length", "100", "--target-version", "py311"]
    run = {"check": True, "env": tool_environment(), "stdout": subprocess.DEVNULL}
    subprocess.run([*ruff, "check", *settings, "--select", "I,F401", "--fix", *map(str, files)], **run)  # type: ignore[call-overload]
    subprocess.run([*ruff, "format", *settings, *map(str, files)], **run)  # type: ignore[call-overload]


# Left by installs and tools inside generated folders (pip install -e sdks/python), not by codegen.
_TOOL_LEFTOVERS = ("__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist")


def _files(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.is_file() and not any(p in _TOOL_LEFTOVERS or p.endswith(".egg-info") for p in parts):
            found["/".join(parts)] = path
    return found


def differences(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ, are missing from `actual`, or should not be there."""
    want, have = _files(expected), _files(actual)
    found = [f"{name} (missing)" for name in want.keys() - have.keys()]
    found += [f"{name} (not generated)" for name in have.keys() - want.keys()]
    found += [
        f"{name} (changed)" for name in want.keys() & have.keys() if want[name].read_bytes() != have[name].read_bytes()
    ]
    return sorted(found)


def check(repo: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(repo / SOURCE, Path(tmp))
        drift: list[str] = []
        for output in OUTPUTS:
            committed = repo / output
            if not committed.is_dir():
                drift.append(f"{output}/ (missing)")
                continue
            drift.extend(f"{output}/{d}" for d in differences(Path(tmp) / output, committed))
        return drift


def regenerate(repo: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(repo / SOURCE, Path(tmp))
        for output in OUTPUTS:
            shutil.rmtree(repo / output, ignore_errors=True)
            shutil.copytree(Path(tmp) / output, repo / output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when committed code drifts from the spec")
    parser.add_argument("--repo", type=Path, default=REPO, help="the repository root (default: this one)")
    args = parser.parse_args(argv)
    if not args.check:
        regenerate(args.repo)
        print(f"generated {', '.join(OUTPUTS)} from {SOURCE}")
        return 0
    drift = check(args.repo)
    if drift:
        print(f"generated code differs from {SOURCE}; run `make gen` and commit:", file=sys.stderr)
        for line in drift:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"generated code matches {SOURCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
