"""A non-editable install (a wheel, the single binary) contains every package of runtime/."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_runtime_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    runtime = REPO / "runtime"
    found = {
        ".".join(["pocketstack", *init.parent.relative_to(runtime).parts])
        for init in runtime.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed
