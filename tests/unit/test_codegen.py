"""The generators: spec conventions are enforced, and drift from the spec is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codegen.__main__ import OUTPUTS
from codegen.spec import SpecError, load_spec
from tests.support.config import REPO


def _spec_with(tmp_path: Path, paths: dict[str, object]) -> Path:
    document = yaml.safe_load((REPO / "spec/openapi.yaml").read_text())
    document["paths"] = paths
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


OK = {
    "200": {
        "description": "ok",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HealthInfo"}}},
    }
}


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ({"tags": ["Inspect"], "responses": OK}, "operationId is missing"),
        ({"operationId": "x", "responses": OK}, "exactly one tag"),
        ({"operationId": "x", "tags": ["Inspect"], "responses": {"400": {"description": "e"}}}, "exactly one 2xx"),
        (
            {"operationId": "x", "tags": ["Inspect"], "x-stream": {"field": "stream"}, "responses": OK},
            "text/event-stream",
        ),
        (
            {"operationId": "x", "tags": ["Inspect"], "x-legacy-path": "/v1/old/{id}", "responses": OK},
            "x-legacy-path must be a path with the same parameters",
        ),
    ],
)
def test_conventions_are_enforced(tmp_path: Path, operation: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(_spec_with(tmp_path, {"/v1/x": {"get": operation}}))


def test_null_from_a_yaml_slip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    text = (REPO / "spec/openapi.yaml").read_text()
    path.write_text(text.replace('description: "The identifier again, for OpenAI clients."', "description: one, two"))
    with pytest.raises(SpecError, match="is null"):
        load_spec(path)


def test_greedy_path_parameters_match_slashes() -> None:
    spec = load_spec(REPO / "spec/openapi.yaml")
    (get_model,) = [op for op in spec.operations if op.operation_id == "get_model"]
    assert get_model.aiohttp_path == "/v1/models/{model_id:.+}"
    assert get_model.request_model == "GetModelRequest"


def _codegen(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codegen", "--repo", str(repo), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_check_fails_after_a_spec_edit_without_regeneration(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "spec", copy / "spec")
    for output in OUTPUTS:
        shutil.copytree(REPO / output, copy / output, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    clean = _codegen(copy, "--check")
    assert clean.returncode == 0, clean.stderr

    spec = copy / "spec/openapi.yaml"
    text = spec.read_text()
    edited = text.replace(
        "        pocketstack_version:\n",
        "        build:\n          type: string\n        pocketstack_version:\n",
    )
    assert edited != text
    spec.write_text(edited)
    drift = _codegen(copy, "--check")
    assert drift.returncode == 1
    assert "runtime/_generated/models.py (changed)" in drift.stderr
    assert "sdks/python/pocketstack_client/models/version_info.py (changed)" in drift.stderr

    stray = copy / "runtime/_generated/hand_written.py"
    stray.write_text("x = 1\n")
    assert "runtime/_generated/hand_written.py (not generated)" in _codegen(copy, "--check").stderr

    regenerated = _codegen(copy)
    assert regenerated.returncode == 0, regenerated.stderr
    assert _codegen(copy, "--check").returncode == 0
    assert not stray.exists()


def test_every_enum_value_gets_a_constant_of_its_own_in_the_kotlin_and_swift_sdks() -> None:
    """Values spelled in symbols only ("=", "!=", "=~") once all became EMPTY / `value`: duplicates
    that neither compiler accepts."""
    from codegen import kotlin, swift
    from codegen.schemas import spelled

    schemas = load_spec(REPO / "spec" / "openapi.yaml").document["components"]["schemas"]
    enums = {name: [str(v) for v in schema["enum"]] for name, schema in schemas.items() if "enum" in schema}
    assert "MetricLabelOperator" in enums
    for name, values in enums.items():
        assert len({kotlin.constant(v) for v in values}) == len(set(values)), name
        assert len({swift.camel(spelled(v)) for v in values}) == len(set(values)), name
