"""Pydantic models for the server, written by datamodel-code-generator."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from codegen.spec import Spec

# Why each flag: see the notes of issue 2 — MISSING keeps optional non-nullable fields out of
# dumps (clients reject `null` there), full-path names stay stable as schemas grow.
DATAMODEL_FLAGS = (
    "--input-file-type", "openapi",
    "--output-model-type", "pydantic_v2.BaseModel",
    "--target-python-version", "3.11",
    "--target-pydantic-version", "2.14",
    "--use-missing-sentinel",
    "--use-default",
    "--set-default-enum-member",  # `mode: SearchMode = SearchMode.vector`, not a bare string
    "--collapse-root-models",
    "--extra-fields", "allow",  # what a remote adds (reasoning_content...) reaches the client
    "--strict-nullable",
    "--naming-strategy", "full-path",
    "--enum-field-as-literal", "one",
    "--use-annotated",
    "--field-constraints",
    "--use-standard-collections",
    "--use-union-operator",
    "--use-schema-description",
    "--disable-timestamp",
    "--disable-future-imports",  # annotations evaluated by the class body (cached bytecode), not re-parsed at import
    "--formatters", "ruff-format", "ruff-check",
)  # fmt: skip


# Wire names that cannot be Python field names as they are (pydantic's mypy plugin gives every
# model's __init__ a `**kwargs`): the field gets the Python name, the wire keeps its own.
FIELD_ALIASES = {"kwargs": "kwargs_"}


def write_models(spec: Spec, header: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "openapi.json"
        # JSON, not YAML: keeps property order, which becomes field order.
        source.write_text(json.dumps(spec.model_document(), indent=1), encoding="utf-8")
        aliases = Path(tmp) / "aliases.json"
        aliases.write_text(json.dumps(FIELD_ALIASES), encoding="utf-8")
        subprocess.run(
            [
                sys.executable, "-m", "datamodel_code_generator",
                "--input", str(source),
                "--output", str(target),
                "--custom-file-header", header.rstrip("\n"),
                "--aliases", str(aliases),
                *DATAMODEL_FLAGS,
            ],
            check=True,
            cwd=tmp,
        )  # fmt: skip
    target.write_text(_deferred(target.read_text(encoding="utf-8")), encoding="utf-8")


# Start-up time: building every model's validator at import is most of the generated module's
# import cost, which sits between "listening" and "ready". Each model builds it on first use.
DEFERRED_BASE = """class BaseModel(PydanticBaseModel):
    \"\"\"Every wire model: its validator is built on first use, not at import.\"\"\"

    model_config = ConfigDict(defer_build=True)
"""


def _deferred(source: str) -> str:
    """The generated models, with every BaseModel deriving from one whose build is deferred."""
    head, marker, rest = source.partition("\n\n\nclass ")
    imports = head.splitlines()
    line = next(i for i, text in enumerate(imports) if text.startswith("from pydantic import "))
    names = [n.strip() for n in imports[line].removeprefix("from pydantic import ").split(",")]
    imports[line] = "from pydantic import " + ", ".join(n for n in names if n != "BaseModel")
    imports.insert(line + 1, "from pydantic import BaseModel as PydanticBaseModel")
    return "\n".join(imports).rstrip() + "\n\n\n" + DEFERRED_BASE.rstrip("\n") + marker + rest
