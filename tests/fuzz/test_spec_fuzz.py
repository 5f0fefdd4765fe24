"""schemathesis over spec/openapi.yaml against `pocketstack run` (issue 21 §5): every operation gets
the examples, coverage and fuzzing phases, then a short stateful run over the links schemathesis
infers (the spec declares none); no answer may be a 5xx or break its own schema (status code, media
type, body). What it found is kept in tests/functional/test_fuzz_findings.py.

Bounded for `make test`: POCKETSTACK_FUZZ_EXAMPLES test cases per operation and phase (default 5),
derandomized so CI sees the same cases every run. `make fuzz` runs this module with more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from schemathesis.config import SchemathesisConfig

from pocketstack import distributions
from tests.support.config import REPO
from tests.support.process import Server, start

pytestmark = [pytest.mark.process, pytest.mark.slow]

EXAMPLES = int(os.environ.get("POCKETSTACK_FUZZ_EXAMPLES", "5"))
STATEFUL_STEPS = int(os.environ.get("POCKETSTACK_FUZZ_STATEFUL_STEPS", "6"))
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance"]
# A generated chat that names the real model (the stateful phase finds its id in GET /v1/models)
# decodes until the context is full: a small window keeps each such call to seconds on 2 cores.
CONTEXT_TOKENS = 512

SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # a finding is reported as found, unshrunk
)


def _run_config(folder: Path) -> Path:
    """The edge distribution with the chat context capped (the one change: see CONTEXT_TOKENS)."""
    path = distributions.path_of("edge")
    assert path is not None
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    for entry in data["providers"]["inference"]:
        if entry["provider_type"] == "inline::llama-cpp":
            entry["config"]["context_length"] = CONTEXT_TOKENS
    target = folder / "fuzz.yaml"
    target.write_text(yaml.safe_dump(data))
    return target


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz")
    server = start(folder / "home", [str(_run_config(folder))])
    try:
        yield server
    finally:
        assert server.stop() == 0, server.output()
    assert "Traceback" not in server.output()


# Loaded at collection, one test per operation; the server's address is given at each call (the lazy
# loader, schemathesis.pytest.from_fixture, reads a node attribute pytest 9 no longer has).
schema = schemathesis.openapi.from_path(
    REPO / "spec" / "openapi.yaml",
    config=SchemathesisConfig.from_dict(
        {
            "request-timeout": 60,
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
        }
    ),
)


@schema.parametrize()
@hypothesis.settings(SETTINGS)
def test_every_operation_answers_within_its_spec(case: Any, fuzz_server: Server) -> None:
    case.call_and_validate(base_url=fuzz_server.base_url)


def test_linked_operations_answer_within_their_spec(fuzz_server: Server) -> None:
    schema.config.update(base_url=fuzz_server.base_url)
    machine = schema.as_state_machine()
    machine.run(settings=hypothesis.settings(SETTINGS, max_examples=EXAMPLES, stateful_step_count=STATEFUL_STEPS))
