"""inline::toxicity and inline::code-scanner (the [toxicity] and [codeshield] extras, part of [dev]),
through `openai` and `llama-stack-client`; and optional providers left out when their extra is not there."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from pocketstack.providers import PROVIDERS
from tests.support.config import edge_with
from tests.support.errors import assert_error_shape
from tests.support.safety_cases import CODE, TOXIC


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


def hits(result: Any) -> set[str]:
    found = {name for name, hit in result.categories.model_dump(by_alias=True, exclude_none=True).items() if hit}
    return found | {name for name, hit in (result.categories.model_extra or {}).items() if hit}


def precision_recall(predicted: list[bool], labels: list[bool]) -> tuple[float, float]:
    true_positive = sum(p and y for p, y in zip(predicted, labels, strict=True))
    return true_positive / max(1, sum(predicted)), true_positive / max(1, sum(labels))


async def test_toxicity_scores_every_labelled_case(oai: openai.AsyncOpenAI) -> None:
    moderation = await oai.moderations.create(input=[text for text, _, _ in TOXIC], model="toxicity")
    assert len(moderation.results) == len(TOXIC)
    for result in moderation.results:
        score = result.category_scores.model_extra["toxicity"]  # type: ignore[index]
        assert 0.0 <= score <= 1.0 and result.flagged is (score >= 0.5)
        assert hits(result) == ({"toxicity"} if result.flagged else set())
    precision, recall = precision_recall([r.flagged for r in moderation.results], [f for _, f, _ in TOXIC])
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)  # measured: 0.917 / 0.917


async def test_a_toxicity_shield_with_its_own_threshold(server: TestClient[Any, Any]) -> None:
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    await lls.shields.register(shield_id="strict", provider_id="toxicity", params={"threshold": 0.3})
    mild = "You brainless twit, read the manual."  # scores 0.47: under the default 0.5, over 0.3
    assert (
        await lls.safety.run_shield(shield_id="toxicity", messages=[{"role": "user", "content": mild}])
    ).violation is None
    strict = await lls.safety.run_shield(shield_id="strict", messages=[{"role": "user", "content": mild}])
    assert strict.violation is not None and strict.violation.violation_level == "error"
    assert strict.violation.metadata is not None and strict.violation.metadata["threshold"] == 0.3
    await lls.close()
    response = await server.post(
        "/v1/shields", json={"shield_id": "x", "provider_id": "toxicity", "params": {"threshold": 2}}
    )
    assert response.status == 400 and "threshold" in assert_error_shape(await response.json())["message"]


async def test_code_scanner_on_the_labelled_cases(oai: openai.AsyncOpenAI) -> None:
    moderation = await oai.moderations.create(input=[text for text, _, _ in CODE], model="code-scanner")
    results = moderation.results
    for (text, flagged, categories), result in zip(CODE, results, strict=True):
        if result.flagged and flagged:
            assert hits(result) == categories, text
            assert (result.model_extra or {})["user_message"] == "Sorry, I found security concerns in the code."
    precision, recall = precision_recall([r.flagged for r in results], [f for _, f, _ in CODE])
    assert precision == 1.0 and recall >= 0.6, (precision, recall)  # measured: 1.000 / 0.600 (CodeShield's rules)


async def test_code_scanner_reads_fenced_blocks_in_a_conversation(server: TestClient[Any, Any]) -> None:
    lls = llama_stack_client.AsyncLlamaStackClient(base_url=str(server.make_url("")).rstrip("/"), max_retries=0)
    messages: list[Any] = [
        {"role": "user", "content": "How do I load my cache file?"},
        {"role": "assistant", "content": "Like this:\n\n```python\nimport pickle\ncache = pickle.loads(blob)\n```\n"},
    ]
    result = await lls.safety.run_shield(shield_id="code-scanner", messages=messages)
    assert result.violation is not None and result.violation.metadata is not None
    assert result.violation.user_message == "Sorry, I found security concerns in the code."
    assert result.violation.metadata["violation_type"] == "unsafe-pickle-use"
    findings = result.violation.metadata["findings"]
    assert isinstance(findings, list)
    (finding,) = findings
    assert (finding["message_index"], finding["language"], finding["cwe_id"]) == (1, "python", "CWE-502")
    safe = [{"role": "assistant", "content": "```python\nimport json\ncache = json.loads(blob)\n```"}]
    assert (await lls.safety.run_shield(shield_id="code-scanner", messages=safe)).violation is None  # type: ignore[arg-type]
    await lls.close()


async def test_an_optional_provider_without_its_extra_is_left_out_with_its_shields(
    aiohttp_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PROVIDERS["inline::toxicity"]
    monkeypatch.setitem(PROVIDERS, spec.provider_type, dataclasses.replace(spec, requires=("no_such_module_here",)))
    server = await aiohttp_client(create_app(edge_with()))
    shields = {s["identifier"] for s in (await (await server.get("/v1/shields")).json())["data"]}
    assert "toxicity" not in shields and {"pii", "llama-guard", "code-scanner"} <= shields
    providers = {p["provider_id"] for p in (await (await server.get("/v1/providers")).json())["data"]}
    assert "toxicity" not in providers


async def test_a_required_provider_without_its_extra_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from pocketstack.config import ConfigError
    from pocketstack.core.stack import plan_providers

    spec = PROVIDERS["inline::code-scanner"]
    monkeypatch.setitem(PROVIDERS, spec.provider_type, dataclasses.replace(spec, requires=("no_such_module_here",)))
    config = edge_with()
    for entry in config.providers["safety"]:
        entry.optional = False
    with pytest.raises(ConfigError) as caught:
        plan_providers(config)
    assert "inline::code-scanner needs no_such_module_here (pip install 'pocketstack[codeshield]')" in str(caught.value)
