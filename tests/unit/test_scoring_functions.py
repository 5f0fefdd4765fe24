"""The scoring functions' pure parts: math normalisation, the multiple-choice regexes, IFEval's checks,
DocVQA's normalisation, and the aggregation functions (providers/scoring.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pocketstack.errors import BadRequestError
from pocketstack.providers.inline.scoring_basic import ifeval
from pocketstack.providers.inline.scoring_basic.docvqa import normalize_answer
from pocketstack.providers.inline.scoring_basic.latex_numbers import latex_value
from pocketstack.providers.inline.scoring_basic.math_answers import (
    MATH_ANSWER_REGEXES,
    extract_result_from_boxed,
    math_answers_match,
    normalize_final_answer,
)
from pocketstack.providers.inline.scoring_basic.multiple_choice import MULTIPLE_CHOICE_REGEXES
from pocketstack.providers.inline.scoring_llm_as_judge.provider import template_columns
from pocketstack.providers.scoring import aggregate, aggregation_functions, first_match, require_columns

MATH = MATH_ANSWER_REGEXES[0]


def final(answer: str) -> str:
    return f"Let me work it out. The final answer is $\\boxed{{{answer}}}$"


@pytest.mark.parametrize(
    ("response", "expected", "match"),
    [
        (final("\\frac{1}{2}"), "0.5", True),
        (final("\\dfrac12"), "\\frac{1}{2}", True),
        (final("1/2"), "\\frac{1}{2}", True),
        (final("100,000"), "100000", True),
        (final("3 \\text{ inches}"), "3", True),
        (final("2\\sqrt3"), "2\\sqrt{3}", True),
        (final("x+1"), "x+1", True),
        (final("\\left( 3, 4 \\right)"), "(3,4)", True),
        (final("90^\\circ"), "90", True),
        (final("2^{10}"), "1024", True),
        (final("1235"), "1234", False),  # Llama Stack's 3 significant figures would call these equal
        (final("\\frac{1}{3}"), "0.333", False),
        ("no boxed answer, just 7", "7", False),
        ("We get \\boxed{42}. Q: next question A: 41", "42", True),  # no regex match: the last boxed answer
    ],
)
def test_math_answers(response: str, expected: str, match: bool) -> None:
    assert math_answers_match(response, expected, MATH) is match


def test_math_normalisation_steps() -> None:
    assert extract_result_from_boxed("so \\boxed{\\frac{a}{b}} and more") == "\\frac{a}{b}"
    assert extract_result_from_boxed("so \\boxed 5$ done") == "5"
    assert extract_result_from_boxed("no box") == ""
    assert normalize_final_answer(final("\\text{(B)}"), MATH) == "B"
    assert normalize_final_answer(final("k = 12"), MATH) == "12"
    assert normalize_final_answer(final("0.5"), MATH) == "\\frac{1}{2}"
    assert latex_value("3\\cdot\\pi") == pytest.approx(9.42477796)
    assert latex_value("\\sqrt[3]{27}") == 3.0
    assert latex_value("x + 1") is None and latex_value("\\frac{1}{0}") is None and latex_value("10^{400}") is None


def parsed(response: str) -> str | None:
    for regex in MULTIPLE_CHOICE_REGEXES:
        match = re.search(regex, response)
        if match:
            return match.group(1)
    return None


def test_multiple_choice_regexes() -> None:
    assert len(MULTIPLE_CHOICE_REGEXES) == 42  # Llama Stack's list, duplicates included
    assert parsed("Answer: B") == "B"
    assert parsed("The best answer is C.") == "C"
    assert parsed("answer : d") == "d"  # case-insensitive, as Llama Stack's; scored against "D" it fails
    assert parsed("Antwort: A") == "A"
    assert parsed("答案：Ｃ") == "Ｃ"  # noqa: RUF001 - full-width, as the Chinese benchmarks write it
    assert parsed("الإجابة: ب") == "ب"
    assert parsed("I would pick B") is None


@pytest.mark.parametrize(
    ("instruction", "kwargs", "text", "followed"),
    [
        ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "one two three", True),
        ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "one two three", False),
        ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "Hi. Dr. Who? Ok", True),
        ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "One. Two.", False),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "first\n***\nsecond", True),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a\n***\n\n***\nb", False),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
            "First.\n\nThen, more.",
            True,
        ),
        ("keywords:existence", {"keywords": ["Paris", "(river)"]}, "paris has a (river)", True),
        ("keywords:existence", {"keywords": ["Paris", "Rome"]}, "paris only", False),
        ("keywords:frequency", {"keyword": "la", "frequency": 3, "relation": "at least"}, "la la la", True),
        ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "badge is fine", True),
        ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "that is Bad.", False),
        ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"}, "Zz", True),
        ("change_case:english_lowercase", {}, "all lower case.", True),
        ("change_case:english_lowercase", {}, "Not lower", False),
        ("change_case:english_capital", {}, "ALL CAPS!", True),
        ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "AB DE", True),
        ("punctuation:no_comma", {}, "no commas here", True),
        ("punctuation:no_comma", {}, "one, two", False),
        ("startend:quotation", {}, '"quoted"', True),
        ("startend:quotation", {}, "not quoted", False),
        ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?", True),
        ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True),
        ("detectable_format:json_format", {}, "{a: 1}", False),
        ("detectable_format:title", {}, "<<A Title>>\nbody", True),
        ("detectable_format:title", {}, "<< >> no title", False),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", True),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two\n* three", False),
        ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and **b**", True),
        ("detectable_format:multiple_sections", {"section_spliter": "Part", "num_sections": 2}, "Part 1 Part 2", True),
        ("detectable_format:constrained_response", {}, "My answer is yes.", True),
        ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[name] at [address]", True),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", True),
        ("combination:two_responses", {}, "one\n******\ntwo", True),
        ("combination:two_responses", {}, "same\n******\nsame", False),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "say hi. Hi!", True),
    ],
)  # fmt: skip
def test_ifeval_checks(instruction: str, kwargs: dict[str, Any], text: str, followed: bool) -> None:
    assert ifeval.score_instructions(text, [(instruction, kwargs)])["score"] == (1.0 if followed else 0.0)


def test_ifeval_score_row() -> None:
    row = {
        "generated_answer": "a short answer, with a comma",
        "instruction_id_list": [
            "punctuation:no_comma",
            "length_constraints:number_words",
            "language:response_language",
        ],
        "kwargs": [{}, {"num_words": 3, "relation": "at least", "unused": None}, {"language": "en"}],
    }
    instructions = ifeval.instruction_args(row)
    assert instructions[1] == ("length_constraints:number_words", {"num_words": 3, "relation": "at least"})
    assert ifeval.score_instructions(row["generated_answer"], instructions) == {  # type: ignore[arg-type]
        "score": 0.5,
        "weight": 2.0,
        "unsupported_instructions": ["language:response_language"],
    }
    assert ifeval.score_instructions("", [("punctuation:no_comma", {})]) == {"score": 0.0, "weight": 1.0}
    assert ifeval.score_instructions("x", []) == {"score": 0.0, "weight": 0.0}
    with pytest.raises(ifeval.InstructionArgsError, match="num_words"):
        ifeval.score_instructions("x", [("length_constraints:number_words", {"relation": "at least"})])
    with pytest.raises(ValueError, match="one object per instruction"):
        ifeval.instruction_args({"instruction_id_list": ["a", "b"], "kwargs": [{}]})
    as_text = {"instruction_id_list": '["punctuation:no_comma"]', "kwargs": "[{}]"}  # a CSV row
    assert ifeval.instruction_args(as_text) == [("punctuation:no_comma", {})]


def test_sentences_and_words() -> None:
    assert ifeval.split_into_sentences("Mr. Smith went to Washington. He saw the U.S. Capitol! Wow?") == [
        "Mr. Smith went to Washington.",
        "He saw the U.S. Capitol!",
        "Wow?",
    ]
    assert ifeval.count_words("It's 3 o'clock, isn't it?") == 8


def test_docvqa_normalisation() -> None:
    assert normalize_answer("The 2nd floor.") == "second floor"
    assert normalize_answer("Two dollars") == "2 dollars"
    assert normalize_answer("dont stop") == "don't stop"
    assert normalize_answer("1,000") == "1000"


def test_judge_templates_and_verdicts() -> None:
    assert template_columns("Q: {input_query} A: {generated_answer} {generated_answer}") == (
        "input_query",
        "generated_answer",
    )
    assert template_columns("no placeholders, {{literal}} braces") == ()
    with pytest.raises(BadRequestError, match="question"):
        template_columns("{question}")
    with pytest.raises(BadRequestError, match="format string"):
        template_columns("a lone { brace")
    patterns = [re.compile(r"Score: (\d+)"), re.compile(r"[ABC]")]
    assert first_match(patterns, "Score: 7 out of 9") == "7"
    assert first_match(patterns, "I say B") == "B"  # no group: the whole match
    assert first_match(patterns, "nothing") is None


ROWS: list[dict[str, Any]] = [
    {"score": 1.0},
    {"score": 0.0},
    {"score": 1.0},
    {"score": None, "error": "no judge_score_regexes matched"},
]


def test_aggregations() -> None:
    assert aggregate(ROWS, ["accuracy", "average", "median", "categorical_count"]) == {
        "accuracy": {"accuracy": 0.5, "num_correct": 2.0, "num_total": 4},
        "average": {"average": 2 / 3},
        "median": {"median": 1.0},
        "categorical_count": {"categorical_count": {"0.0": 1, "1.0": 2, "None": 1}},
    }
    weighted = [{"score": 1.0, "weight": 3.0}, {"score": 0.5, "weight": 1.0}, {"score": 0.0, "weight": 0.0}]
    assert aggregate(weighted, ["weighted_average"]) == {"weighted_average": {"weighted_average": 3.5 / 4}}
    judged = [{"score": "7"}, {"score": "9"}, {"score": "A"}]  # a judge's text counts where it reads as a number
    assert aggregate(judged, ["average", "median"]) == {"average": {"average": 8.0}, "median": {"median": 8.0}}
    assert aggregate([], ["accuracy", "average"]) == {
        "accuracy": {"accuracy": 0.0, "num_correct": 0, "num_total": 0},
        "average": {"average": None},
    }


def test_aggregation_functions_asked() -> None:
    assert aggregation_functions(None, ["accuracy"]) == ["accuracy"]
    assert aggregation_functions({"type": "basic"}, ["accuracy"]) == ["accuracy"]  # not said: the default
    assert aggregation_functions({"aggregation_functions": []}, ["accuracy"]) == []  # said: none
    assert aggregation_functions({"aggregation_functions": ["median"]}) == ["median"]
    with pytest.raises(BadRequestError, match="mode"):
        aggregation_functions({"aggregation_functions": ["mode"]})


def test_required_columns() -> None:
    require_columns([{"a": 1, "b": 2}], ("a", "b"))
    with pytest.raises(BadRequestError, match="Row 1 has no b"):
        require_columns([{"a": 1, "b": 2}, {"a": 1}], ("a", "b"))
