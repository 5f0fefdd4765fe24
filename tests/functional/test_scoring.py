"""Scoring Functions and Scoring through the official `llama_stack_client` (0.7.5), raw HTTP for the
error shapes: the providers' functions listed; every basic function on known answers; aggregations;
a judge registered over llm-as-judge::base with the default chat model; a dataset scored and the
scores saved to a new dataset; bad input; another user's function hidden; config entries."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with
from tests.support.errors import assert_error_shape
from tests.support.users import As

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # Llama Stack marks register/unregister

# Short judge answers: the tests read them, they need not be good.
SCORING = [
    {"provider_id": "basic", "provider_type": "inline::basic", "config": {}},
    {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {"max_tokens": 24}},
]
BASIC = {
    "basic::equality": "equality",
    "basic::subset_of": "subset-of",
    "basic::regex_parser_multiple_choice_answer": "regex-parser-multiple-choice-answer",
    "basic::regex_parser_math_response": "regex-parser-math-response",
    "basic::ifeval": "ifeval",
    "basic::docvqa": "docvqa",
}
JUDGES = {"llm-as-judge::base": "llm-as-judge-base", "llm-as-judge::405b-simpleqa": "llm-as-judge-405b-simpleqa"}


def scoring_config(**overrides: Any) -> Any:
    return edge_with(providers=edge_providers_with(scoring=SCORING), **overrides)


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(scoring_config()))  # type: ignore[no-any-return]


def answers(*pairs: tuple[str, str]) -> list[dict[str, object]]:
    return [{"generated_answer": generated, "expected_answer": expected} for generated, expected in pairs]


async def scores(lls: llama_stack_client.AsyncLlamaStackClient, fn_id: str, rows: list[dict[str, object]]) -> list[Any]:
    result = await lls.scoring.score(input_rows=rows, scoring_functions={fn_id: None})
    return [row["score"] for row in result.results[fn_id].score_rows]


async def test_the_providers_functions_are_listed(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    listed = {fn.identifier: fn for fn in await lls.scoring_functions.list()}
    assert {i: fn.provider_resource_id for i, fn in listed.items()} == BASIC | JUDGES
    assert {fn.provider_id for i, fn in listed.items() if i in BASIC} == {"basic"}
    assert {fn.provider_id for i, fn in listed.items() if i in JUDGES} == {"llm-as-judge"}
    assert {fn.return_type.type for fn in listed.values()} == {"number"}
    equality = await lls.scoring_functions.retrieve("basic::equality")
    assert equality.type == "scoring_function" and equality.params is not None
    assert equality.params.to_dict() == {"type": "basic", "aggregation_functions": ["accuracy"]}
    assert listed["basic::ifeval"].params.aggregation_functions == ["weighted_average"]  # type: ignore[union-attr]
    choice = listed["basic::regex_parser_multiple_choice_answer"].params
    assert choice is not None and choice.type == "regex_parser" and len(choice.parsing_regexes or []) == 42
    assert listed["llm-as-judge::base"].params is None  # no judge of its own: the params give one
    simpleqa = listed["llm-as-judge::405b-simpleqa"].params
    assert simpleqa is not None and simpleqa.judge_score_regexes == ["(A|B|C)"]  # type: ignore[union-attr]


async def test_basic_functions_on_known_answers(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    pairs = answers(("4", "4"), ("4", "5"), ("The answer is 4", "4"))
    assert await scores(lls, "basic::equality", pairs) == [1.0, 0.0, 0.0]
    assert await scores(lls, "basic::subset_of", pairs) == [1.0, 0.0, 1.0]

    choices = answers(
        ("Answer: B", "B"),
        ("The best answer is C", "C"),
        ("I'd pick D", "D"),
        ("答案：A", "A"),  # noqa: RUF001 - the full-width colon Chinese answers use
        ("Answer: B", "C"),
    )
    assert await scores(lls, "basic::regex_parser_multiple_choice_answer", choices) == [1.0, 1.0, 0.0, 1.0, 0.0]
    own_regex = await lls.scoring.score(
        input_rows=answers(("Score: 7", "7")),
        scoring_functions={
            "basic::regex_parser_multiple_choice_answer": {"type": "regex_parser", "parsing_regexes": [r"Score: (\d+)"]}
        },
    )
    assert own_regex.results["basic::regex_parser_multiple_choice_answer"].score_rows == [{"score": 1.0}]

    def boxed(answer: str) -> str:
        return f"So the final answer is $\\boxed{{{answer}}}$"

    math = answers(
        (boxed("\\frac{1}{2}"), "0.5"),
        (boxed("\\dfrac12"), "\\frac{1}{2}"),
        (boxed("100,000"), "100000"),
        (boxed("3 \\text{ inches}"), "3"),
        (boxed("2^{10}"), "1024"),
        (boxed("1235"), "1234"),
        ("I think it is 7", "7"),
    )
    assert await scores(lls, "basic::regex_parser_math_response", math) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]

    docvqa = answers(("The 2nd floor.", '["second floor", "floor 2"]'), ("basement", '["second floor"]'))
    assert await scores(lls, "basic::docvqa", docvqa) == [1.0, 0.0]

    ifeval = await lls.scoring.score(
        input_rows=[
            {
                "generated_answer": "all lowercase and no commas here",
                "instruction_id_list": [
                    "change_case:english_lowercase",
                    "punctuation:no_comma",
                    "length_constraints:number_words",
                    "language:response_language",
                ],
                "kwargs": [{}, {}, {"num_words": 10, "relation": "at least"}, {"language": "en"}],
            },
            {"generated_answer": "<<Title>> text", "instruction_id_list": ["detectable_format:title"], "kwargs": [{}]},
        ],
        scoring_functions={"basic::ifeval": None},
    )
    result = ifeval.results["basic::ifeval"]
    assert result.score_rows == [
        {"score": 2 / 3, "weight": 3.0, "unsupported_instructions": ["language:response_language"]},
        {"score": 1.0, "weight": 1.0},
    ]
    assert result.aggregated_results == {"weighted_average": {"weighted_average": 3 / 4}}


async def test_aggregation_functions(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    rows = answers(("a", "a"), ("b", "a"), ("a", "a"), ("a", "a"))
    result = await lls.scoring.score(
        input_rows=rows,
        scoring_functions={
            "basic::equality": {
                "type": "basic",
                "aggregation_functions": ["accuracy", "average", "median", "categorical_count", "weighted_average"],
            }
        },
    )
    assert result.results["basic::equality"].aggregated_results == {
        "accuracy": {"accuracy": 0.75, "num_correct": 3.0, "num_total": 4},
        "average": {"average": 0.75},
        "median": {"median": 1.0},
        "categorical_count": {"categorical_count": {"0.0": 1, "1.0": 3}},
        "weighted_average": {"weighted_average": 0.75},
    }
    plain = await lls.scoring.score(input_rows=rows, scoring_functions={"basic::equality": None})
    assert plain.results["basic::equality"].aggregated_results == {
        "accuracy": {"accuracy": 0.75, "num_correct": 3.0, "num_total": 4}
    }
    untyped = await lls.scoring.score(
        input_rows=rows, scoring_functions={"basic::equality": {"aggregation_functions": ["median"]}}
    )
    assert untyped.results["basic::equality"].aggregated_results == {"median": {"median": 1.0}}


async def test_a_registered_judge_scores_with_the_chat_model(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    template = "Repeat this word and nothing else: {generated_answer}"
    await lls.scoring_functions.register(
        scoring_fn_id="echo-judge",
        description="The judge repeats the answer; the first line of its verdict is the score.",
        return_type={"type": "string"},
        provider_scoring_fn_id="llm-as-judge::base",
        params={
            "type": "llm_as_judge",
            "judge_model": CHAT_MODEL,
            "prompt_template": template,
            "judge_score_regexes": ["(.*)"],
            "aggregation_functions": ["categorical_count"],
        },
    )
    registered = await lls.scoring_functions.retrieve("echo-judge")
    assert (registered.provider_id, registered.provider_resource_id) == ("llm-as-judge", "llm-as-judge-base")
    assert registered.return_type.type == "string" and registered.description is not None

    rows: list[dict[str, object]] = [
        {"generated_answer": w} for w in ("apple", "river", "seven")
    ]  # no other column needed
    result = (await lls.scoring.score(input_rows=rows, scoring_functions={"echo-judge": None})).results["echo-judge"]
    assert len(result.score_rows) == 3
    for row in result.score_rows:
        verdict = row["judge_feedback"]
        assert isinstance(verdict, str) and verdict
        assert row["score"] == re.match("(.*)", verdict).group(1)  # type: ignore[union-attr]
    assert sum(result.aggregated_results["categorical_count"]["categorical_count"].values()) == 3  # type: ignore[index]

    never = await lls.scoring.score(
        input_rows=rows[:1],
        scoring_functions={
            "echo-judge": {
                "type": "llm_as_judge",
                "judge_model": CHAT_MODEL,
                "prompt_template": template,
                "judge_score_regexes": [r"NEVER_(\d+)"],
            }
        },
    )
    (unread,) = never.results["echo-judge"].score_rows
    assert unread["score"] is None and unread["judge_feedback"]
    assert unread["error"] == "no judge_score_regexes matched the judge's answer"

    await lls.scoring_functions.unregister("echo-judge")
    assert "echo-judge" not in {fn.identifier for fn in await lls.scoring_functions.list()}


async def test_score_batch_saves_the_scored_rows(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    # More than one iterrows page; every third answer wrong.
    qa: list[dict[str, object]] = [
        {"input_query": f"{n} + {n}?", "generated_answer": str(2 * n if n % 3 else n), "expected_answer": str(2 * n)}
        for n in range(1, 2501)
    ]
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": qa}, dataset_id="sums"
    )
    batch = await lls.scoring.score_batch(
        dataset_id="sums", scoring_functions={"basic::equality": None, "basic::subset_of": None}
    )
    assert len(batch.results["basic::equality"].score_rows) == len(qa) and batch.dataset_id is None
    correct = sum(1 for row in qa if row["generated_answer"] == row["expected_answer"])
    assert batch.results["basic::equality"].aggregated_results["accuracy"] == {
        "accuracy": correct / len(qa),
        "num_correct": correct,
        "num_total": len(qa),
    }

    saved = await lls.scoring.score_batch(
        dataset_id="sums", scoring_functions={"basic::equality": None}, save_results_dataset=True
    )
    assert saved.dataset_id is not None and re.fullmatch(r"scored-sums-[0-9a-f]{8}", saved.dataset_id)
    dataset = await lls.beta.datasets.retrieve(saved.dataset_id)
    assert dataset.purpose == "eval/question-answer"
    assert dataset.metadata is not None and dataset.metadata["source_dataset_id"] == "sums"
    assert dataset.metadata["scoring_functions"] == ["basic::equality"]
    page = await lls.beta.datasets.iterrows(saved.dataset_id, start_index=0, limit=3)
    assert page.data == [
        {**row, "basic::equality": {"score": 1.0 if n % 3 else 0.0}} for n, row in enumerate(qa[:3], 1)
    ]


async def test_bad_input(lls: llama_stack_client.AsyncLlamaStackClient, server: TestClient[Any, Any]) -> None:
    with pytest.raises(llama_stack_client.NotFoundError) as unknown:
        await lls.scoring.score(input_rows=answers(("a", "a")), scoring_functions={"basic::nope": None})
    assert "basic::nope" in str(unknown.value)
    with pytest.raises(llama_stack_client.NotFoundError) as no_dataset:
        await lls.scoring.score_batch(dataset_id="nope", scoring_functions={"basic::equality": None})
    assert "Dataset 'nope' not found" in str(no_dataset.value)

    as_anyone = As(server, None)

    async def fails(path: str, body: dict[str, Any], status: int = 400) -> str:
        code, answer = await as_anyone.call("POST", path, body)
        assert code == status, answer
        return str(assert_error_shape(answer)["message"])

    rows = [*answers(("a", "a")), {"expected_answer": "b"}]
    message = await fails("/v1/scoring/score", {"input_rows": rows, "scoring_functions": {"basic::equality": None}})
    assert message == "Row 1 has no generated_answer."
    message = await fails(
        "/v1/scoring/score",
        {"input_rows": answers(("a", '["a"]'), ("b", "b")), "scoring_functions": {"basic::docvqa": None}},
    )
    assert message.startswith("Row 1's expected_answer is not a JSON list of accepted answers")
    ifeval_row = {"generated_answer": "x", "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{}]}
    message = await fails(
        "/v1/scoring/score", {"input_rows": [ifeval_row], "scoring_functions": {"basic::ifeval": None}}
    )
    assert message.startswith("Row 0: instruction length_constraints:number_words needs `num_words` (int)")
    judge = {"type": "llm_as_judge", "judge_model": CHAT_MODEL, "prompt_template": "{generated_answer}"}
    message = await fails(
        "/v1/scoring/score",
        {
            "input_rows": rows,
            "scoring_functions": {"llm-as-judge::base": {**judge, "judge_score_regexes": ["ok", "(x"]}},
        },
    )
    assert "judge_score_regexes[1] '(x' is not a valid regex" in message
    message = await fails(
        "/v1/scoring/score",
        {
            "input_rows": rows,
            "scoring_functions": {"basic::subset_of": {"type": "regex_parser", "parsing_regexes": ["("]}},
        },
    )
    assert "basic::subset_of takes basic params: it parses nothing" in message
    message = await fails(
        "/v1/scoring/score",
        {
            "input_rows": rows,
            "scoring_functions": {
                "basic::regex_parser_math_response": {"type": "regex_parser", "parsing_regexes": ["("]}
            },
        },
    )
    assert "parsing_regexes[0] '('" in message
    message = await fails(
        "/v1/scoring/score", {"input_rows": answers(("a", "a")), "scoring_functions": {"llm-as-judge::base": None}}
    )
    assert "llm-as-judge::base needs params with judge_model" in message
    no_model = {"type": "llm_as_judge", "prompt_template": "{generated_answer}", "judge_score_regexes": ["(.*)"]}
    message = await fails(
        "/v1/scoring/score", {"input_rows": answers(("a", "a")), "scoring_functions": {"llm-as-judge::base": no_model}}
    )
    assert "judge_model" in message
    untyped = {"prompt_template": "{generated_answer}", "judge_score_regexes": ["(.*)"]}
    message = await fails(
        "/v1/scoring/score", {"input_rows": answers(("a", "a")), "scoring_functions": {"llm-as-judge::base": untyped}}
    )
    assert "llm-as-judge::base needs params with judge_model" in message
    message = await fails(
        "/v1/scoring/score",
        {
            "input_rows": answers(("a", "a")),
            "scoring_functions": {"llm-as-judge::base": {**judge, "judge_model": "nope", "judge_score_regexes": ["x"]}},
        },
    )
    assert "the judge model 'nope' is not registered" in message

    register = {"description": "d", "return_type": {"type": "number"}}
    message = await fails("/v1/scoring-functions", {**register, "scoring_fn_id": "basic::equality"}, 409)
    assert "already registered" in message
    message = await fails("/v1/scoring-functions", {**register, "scoring_fn_id": "mine"})
    assert "say which with provider_id" in message
    message = await fails(
        "/v1/scoring-functions", {**register, "scoring_fn_id": "mine", "provider_scoring_fn_id": "llm-as-judge::base"}
    )
    assert "llm-as-judge::base needs params with judge_model" in message
    message = await fails(
        "/v1/scoring-functions",
        {**register, "scoring_fn_id": "mine", "provider_scoring_fn_id": "equality", "provider_id": "llm-as-judge"},
    )
    assert "'equality' is a function of scoring provider 'basic', not of 'llm-as-judge'" in message
    code, answer = await as_anyone.call("DELETE", "/v1/scoring-functions/basic::equality")
    assert code == 400 and "served by its provider" in assert_error_shape(answer)["message"]
    code, answer = await as_anyone.call("GET", "/v1/scoring-functions/nope")
    assert code == 404 and assert_error_shape(answer)["message"] == "Scoring function 'nope' not found."


async def test_llama_stacks_registration_by_provider_id(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    """As Llama Stack's integration test registers a judge: an id of its own on the llm-as-judge provider."""
    await lls.scoring_functions.register(
        scoring_fn_id="llm-as-judge-test-prompt",
        provider_id="llm-as-judge",
        description="LLM as judge scoring function with test prompt",
        return_type={"type": "string"},
        params={
            "type": "llm_as_judge",
            "judge_model": CHAT_MODEL,
            "prompt_template": "Output a number response in the following format: Score: <number>, where <number> "
            "is the number between 0 and 9.",
            "judge_score_regexes": [r"Score: (\d+)"],
        },
    )
    fn = await lls.scoring_functions.retrieve("llm-as-judge-test-prompt")
    assert (fn.provider_id, fn.provider_resource_id) == ("llm-as-judge", "llm-as-judge-test-prompt")


async def test_another_users_function_is_hidden(alice: As, bob: As) -> None:
    body = {
        "scoring_fn_id": "alices-judge",
        "description": "alice's",
        "return_type": {"type": "number"},
        "provider_scoring_fn_id": "basic::subset_of",
        "params": {"type": "basic", "aggregation_functions": ["average"]},
    }
    status, _ = await alice.call("POST", "/v1/scoring-functions", body)
    assert status == 204
    alices = await alice.ok("GET", "/v1/scoring-functions/alices-judge")
    assert (alices["provider_id"], alices["provider_resource_id"]) == ("basic", "subset-of")
    assert "alices-judge" not in {fn["identifier"] for fn in (await bob.ok("GET", "/v1/scoring-functions"))["data"]}
    await bob.hidden("GET", "/v1/scoring-functions/alices-judge", "alices-judge", "missing")
    score = {"input_rows": answers(("ab", "a")), "scoring_functions": {"alices-judge": None}}
    await bob.hidden("POST", "/v1/scoring/score", "alices-judge", "missing", score)
    await bob.hidden("DELETE", "/v1/scoring-functions/alices-judge", "alices-judge", "missing")
    scored = await alice.ok("POST", "/v1/scoring/score", score)
    assert scored["results"]["alices-judge"] == {
        "score_rows": [{"score": 1.0}],
        "aggregated_results": {"average": {"average": 1.0}},
    }


async def test_config_scoring_functions(aiohttp_client: Callable[..., Any]) -> None:
    entry = {
        "scoring_fn_id": "strict-math",
        "provider_scoring_fn_id": "basic::regex_parser_math_response",
        "params": {"type": "regex_parser", "parsing_regexes": [r"ANSWER: (.*)"]},
    }
    server = await aiohttp_client(create_app(scoring_config(registered_resources={"scoring_fns": [entry]})))
    as_anyone = As(server, None)
    listed = await as_anyone.ok("GET", "/v1/scoring-functions/strict-math")
    assert (listed["provider_id"], listed["provider_resource_id"]) == ("basic", "regex-parser-math-response")
    scored = await as_anyone.ok(
        "POST",
        "/v1/scoring/score",
        {"input_rows": answers(("ANSWER: 1/2", "0.5")), "scoring_functions": {"strict-math": None}},
    )
    assert scored["results"]["strict-math"]["score_rows"] == [{"score": 1.0}]
    status, answer = await as_anyone.call("DELETE", "/v1/scoring-functions/strict-math")
    assert status == 400 and "registered_resources" in answer["error"]["message"]

    # Restarted on the same state without the basic provider: its functions are no longer listed.
    without_basic = await aiohttp_client(create_app(edge_with(providers=edge_providers_with(scoring=SCORING[1:]))))
    listed = (await As(without_basic, None).ok("GET", "/v1/scoring-functions"))["data"]
    assert {fn["identifier"] for fn in listed} == set(JUDGES)

    bad = {**entry, "params": {"type": "regex_parser", "parsing_regexes": ["("]}}
    broken = await aiohttp_client(create_app(scoring_config(registered_resources={"scoring_fns": [bad]})))
    status, answer = await As(broken, None).call("GET", "/v1/scoring-functions")
    assert status == 503
    assert "registered_resources.scoring_fns[0] (strict-math)" in answer["error"]["message"]
