"""The llm-as-judge provider against a stand-in inference router: rows judged concurrently (bounded),
a 429 waited out, a verdict no regex reads scored None with the reason, params checked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pocketstack._generated import models
from pocketstack.errors import BadRequestError, ResourceNotFoundError, TooManyRequestsError
from pocketstack.providers.base import ProviderContext, Routers
from pocketstack.providers.inline.scoring_llm_as_judge import provider as judge_module
from pocketstack.providers.inline.scoring_llm_as_judge.config import LlmAsJudgeScoringConfig
from pocketstack.providers.inline.scoring_llm_as_judge.provider import LlmAsJudgeScoring

PARAMS = {
    "type": "llm_as_judge",
    "judge_model": "judge",
    "prompt_template": "Grade {generated_answer} against {expected_answer}",
    "judge_score_regexes": [r"Score: (\d+)"],
    "aggregation_functions": ["average", "categorical_count"],
}


class StandIn:
    """The models and inference routers: answers "Score: <len of the answer>" after a pause, counting
    how many calls are in flight; the first `busy` calls are answered 429."""

    def __init__(self, busy: int = 0) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.busy = busy
        self.prompts: list[str] = []
        self.requests: list[models.ChatCompletionRequest] = []

    async def get_model(self, request: models.GetModelRequest) -> models.Model:
        if request.model_id != "judge":
            raise ResourceNotFoundError("model", request.model_id)
        return models.Model.model_validate(
            {"identifier": "judge", "provider_id": "p", "provider_resource_id": "judge", "type": "model",
             "model_type": "llm", "metadata": {}, "id": "judge", "created": 0, "owned_by": "x"}
        )  # fmt: skip

    async def openai_chat_completion(self, request: models.ChatCompletionRequest) -> models.ChatCompletion:
        if self.busy:
            self.busy -= 1
            error = TooManyRequestsError("busy")
            error.headers["Retry-After"] = "0"
            raise error
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1
        prompt = str(request.messages[0].model_dump()["content"])
        self.prompts.append(prompt)
        self.requests.append(request)
        answer = prompt.split()[1]
        verdict = "no idea" if answer == "unreadable" else f"Score: {len(answer)}"
        return models.ChatCompletion.model_validate(
            {"id": "c", "object": "chat.completion", "created": 0, "model": "judge",
             "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                          "message": {"role": "assistant", "content": verdict}}]}
        )  # fmt: skip


def judge(stand_in: StandIn, **config: Any) -> LlmAsJudgeScoring:
    routers = Routers()
    routers.inference = stand_in  # type: ignore[assignment]
    routers.models = stand_in  # type: ignore[assignment]
    return LlmAsJudgeScoring(
        LlmAsJudgeScoringConfig(**config), ProviderContext("llm-as-judge", Path("."), routers=routers)
    )


def rows(*answers: str) -> list[dict[str, Any]]:
    return [{"generated_answer": answer, "expected_answer": "x"} for answer in answers]


async def test_rows_are_judged_concurrently_and_in_order() -> None:
    stand_in = StandIn()
    scored = await judge(stand_in, max_concurrency=3).score(
        "llm-as-judge-base", PARAMS, rows(*["a" * n for n in range(1, 11)])
    )
    assert [row["score"] for row in scored.score_rows] == [str(n) for n in range(1, 11)]
    assert stand_in.most_in_flight == 3
    assert scored.aggregated_results["average"] == {"average": 5.5}
    assert stand_in.prompts[0] == "Grade a against x"
    request = stand_in.requests[0]
    assert (request.temperature, request.max_tokens, request.store) == (0, 512, False)


async def test_a_429_is_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge_module, "FIRST_RETRY_S", 0.001)
    stand_in = StandIn(busy=3)
    scored = await judge(stand_in).score("llm-as-judge-base", PARAMS, rows("ab"))
    assert scored.score_rows == [{"score": "2", "judge_feedback": "Score: 2"}]
    with pytest.raises(TooManyRequestsError):
        await judge(StandIn(busy=5), max_retries=2).score("llm-as-judge-base", PARAMS, rows("ab"))


async def test_an_unreadable_verdict_is_a_row_not_an_error() -> None:
    scored = await judge(StandIn()).score("llm-as-judge-base", PARAMS, rows("unreadable", "abc"))
    assert scored.score_rows[0] == {
        "score": None,
        "judge_feedback": "no idea",
        "error": "no judge_score_regexes matched the judge's answer",
    }
    assert scored.score_rows[1]["score"] == "3"
    assert scored.aggregated_results["categorical_count"] == {"categorical_count": {"3": 1, "None": 1}}


async def test_params_are_checked() -> None:
    provider = judge(StandIn())
    with pytest.raises(BadRequestError, match="judge_model"):
        provider.check_function("llm-as-judge-base", None)
    with pytest.raises(BadRequestError, match="judge_model"):
        provider.check_function("llm-as-judge-base", {"type": "llm_as_judge", "prompt_template": "{input_query}"})
    with pytest.raises(BadRequestError, match=r"judge_score_regexes\[1\] '\('"):
        provider.check_function("my-judge", {**PARAMS, "judge_score_regexes": ["ok", "("]})
    with pytest.raises(BadRequestError, match="takes llm_as_judge params"):
        provider.check_function("llm-as-judge-base", {"type": "basic"})
    # SimpleQA's template and regexes stay when the params give only the judge model.
    provider.check_function("llm-as-judge-405b-simpleqa", {"type": "llm_as_judge", "judge_model": "judge"})
    with pytest.raises(BadRequestError, match="Row 0 has no input_query"):
        provider.check_rows("llm-as-judge-405b-simpleqa", {"type": "llm_as_judge", "judge_model": "judge"}, rows("a"))
    with pytest.raises(BadRequestError, match="'missing' is not registered"):
        await provider.score("llm-as-judge-base", {**PARAMS, "judge_model": "missing"}, rows("a"))
