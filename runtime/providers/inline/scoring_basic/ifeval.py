"""IFEval's instruction checks (Llama Stack's basic::ifeval), in pure Python.

A row names the instructions its prompt gave (`instruction_id_list`, e.g.
`length_constraints:number_words`) and each one's arguments (`kwargs`, one object per
instruction, in order); the row's score is the share of them the answer follows, its weight how
many were checked (so weighted_average is IFEval's instruction-level accuracy).

Llama Stack's checkers use nltk (sentence and word tokenizers) and langdetect; these do not:
sentences are split by IFEval's own regex splitter, words are `\\w+` runs, and the case checks
look at case only (not that the language is English). `language:response_language` needs a
language detector, so it is reported as unsupported, like an id this module does not know: such
instructions are listed in the score row's `unsupported_instructions` and left out of its score
and weight, never an error.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

Check = Callable[[str, dict[str, Any]], bool]
Arg = TypeVar("Arg", int, str, list[Any])

RELATIONS = ("less than", "at least")


class InstructionArgsError(ValueError):
    """An instruction's kwargs lack what it needs, or hold the wrong type."""


def _arg(kwargs: dict[str, Any], name: str, kind: type[Arg]) -> Arg:
    value = kwargs.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise InstructionArgsError(f"needs `{name}` ({kind.__name__})")
    return value


def _words(kwargs: dict[str, Any], name: str) -> list[str]:
    words = _arg(kwargs, name, list)
    if not all(isinstance(word, str) for word in words):
        raise InstructionArgsError(f"needs `{name}` (a list of words)")
    return words


def _compare(actual: int, kwargs: dict[str, Any], threshold: str, relation: str) -> bool:
    limit = _arg(kwargs, threshold, int)
    how = _arg(kwargs, relation, str)
    if how not in RELATIONS:
        raise InstructionArgsError(f"`{relation}` is one of {RELATIONS}, not {how!r}")
    return actual < limit if how == "less than" else actual >= limit


# IFEval's sentence splitter (instructions_util.split_into_sentences), used where Llama Stack runs nltk's punkt.
_ALPHABETS = "([A-Za-z])"
_PREFIXES = "(Mr|St|Mrs|Ms|Dr)[.]"
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (
    r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|This\s|Wherever)"
)
_ACRONYMS = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = "[.](com|net|org|io|gov|edu|me)"
_DIGITS = "([0-9])"


def split_into_sentences(text: str) -> list[str]:
    text = " " + text + "  "
    text = text.replace("\n", " ")
    text = re.sub(_PREFIXES, "\\1<prd>", text)
    text = re.sub(_WEBSITES, "<prd>\\1", text)
    text = re.sub(_DIGITS + "[.]" + _DIGITS, "\\1<prd>\\2", text)
    text = re.sub(r"\.{2,}", lambda match: "<prd>" * len(match.group(0)) + "<stop>", text)
    text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = re.sub(r"\s" + _ALPHABETS + "[.] ", " \\1<prd> ", text)
    text = re.sub(_ACRONYMS + " " + _STARTERS, "\\1<stop> \\2", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>\\3<prd>", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>", text)
    text = re.sub(" " + _SUFFIXES + "[.] " + _STARTERS, " \\1<stop> \\2", text)
    text = re.sub(" " + _SUFFIXES + "[.]", " \\1<prd>", text)
    text = re.sub(" " + _ALPHABETS + "[.]", " \\1<prd>", text)
    text = text.replace(".\u201d", "\u201d.").replace('."', '".').replace('!"', '"!').replace('?"', '"?')
    text = text.replace(".", ".<stop>").replace("?", "?<stop>").replace("!", "!<stop>").replace("<prd>", ".")
    sentences = [sentence.strip() for sentence in text.split("<stop>")]
    if sentences and not sentences[-1]:
        sentences = sentences[:-1]
    return sentences


def count_words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _contains(pattern: str, text: str) -> bool:
    # Keywords are words, not regexes (Llama Stack searches them unescaped: a keyword with "(" would fail).
    return re.search(re.escape(pattern), text, flags=re.IGNORECASE) is not None


# Each check: (answer, kwargs) -> followed. Arguments as IFEval's data names them.


def _keywords_existence(text: str, kwargs: dict[str, Any]) -> bool:
    return all(_contains(keyword, text) for keyword in _words(kwargs, "keywords"))


def _keyword_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    keyword = _arg(kwargs, "keyword", str).strip()
    found = len(re.findall(re.escape(keyword), text, flags=re.IGNORECASE))
    return _compare(found, kwargs, "frequency", "relation")


def _forbidden_words(text: str, kwargs: dict[str, Any]) -> bool:
    words = _words(kwargs, "forbidden_words")
    return not any(re.search(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE) for word in words)


def _letter_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    letter = _arg(kwargs, "letter", str).strip().lower()
    if len(letter) != 1:
        raise InstructionArgsError("`letter` is one letter")
    return _compare(Counter(text.lower())[letter], kwargs, "let_frequency", "let_relation")


def _number_sentences(text: str, kwargs: dict[str, Any]) -> bool:
    return _compare(len(split_into_sentences(text)), kwargs, "num_sentences", "relation")


def _number_paragraphs(text: str, kwargs: dict[str, Any]) -> bool:
    paragraphs = re.split(r"\s?\*\*\*\s?", text)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index not in (0, len(paragraphs) - 1):
                return False  # an empty paragraph between two dividers
            count -= 1
    return count == _arg(kwargs, "num_paragraphs", int)


def _number_words(text: str, kwargs: dict[str, Any]) -> bool:
    return _compare(count_words(text), kwargs, "num_words", "relation")


def _nth_paragraph_first_word(text: str, kwargs: dict[str, Any]) -> bool:
    expected_count = _arg(kwargs, "num_paragraphs", int)
    nth = _arg(kwargs, "nth_paragraph", int)
    first_word = _arg(kwargs, "first_word", str).lower()
    paragraphs = re.split(r"\n\n", text)
    count = sum(1 for paragraph in paragraphs if paragraph.strip())
    if not 0 < nth <= count or not paragraphs[nth - 1].strip():
        return False
    word = paragraphs[nth - 1].strip().split()[0].strip().lstrip("'").lstrip('"')
    found = ""
    for letter in word:
        if letter in {".", ",", "?", "!", "'", '"'}:
            break
        found += letter.lower()
    return count == expected_count and found == first_word


def _number_placeholders(text: str, kwargs: dict[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", text)) >= _arg(kwargs, "num_placeholders", int)


def _postscript(text: str, kwargs: dict[str, Any]) -> bool:
    marker = _arg(kwargs, "postscript_marker", str).strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return re.search(pattern, text.lower(), flags=re.MULTILINE) is not None


def _number_bullet_lists(text: str, kwargs: dict[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(stars) + len(dashes) == _arg(kwargs, "num_bullets", int)


def _constrained_response(text: str, kwargs: dict[str, Any]) -> bool:
    options = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    return any(option in text.strip() for option in options)


def _number_highlighted_sections(text: str, kwargs: dict[str, Any]) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.removeprefix("**").removesuffix("**").strip()]
    return len(single) + len(double) >= _arg(kwargs, "num_highlights", int)


def _multiple_sections(text: str, kwargs: dict[str, Any]) -> bool:
    splitter = _arg(kwargs, "section_spliter", str).strip()
    sections = re.split(r"\s?" + re.escape(splitter) + r"\s?\d+\s?", text)
    return len(sections) - 1 >= _arg(kwargs, "num_sections", int)


def _json_format(text: str, kwargs: dict[str, Any]) -> bool:
    value = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        value = value.removeprefix(fence)
    value = value.removesuffix("```").strip()
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _title(text: str, kwargs: dict[str, Any]) -> bool:
    return any(title.lstrip("<").rstrip(">").strip() for title in re.findall(r"<<[^\n]+>>", text))


def _two_responses(text: str, kwargs: dict[str, Any]) -> bool:
    responses = text.split("******")
    kept = []
    for index, response in enumerate(responses):
        if response.strip():
            kept.append(response.strip())
        elif index not in (0, len(responses) - 1):
            return False
    return len(kept) == 2 and kept[0] != kept[1]


def _repeat_prompt(text: str, kwargs: dict[str, Any]) -> bool:
    return text.strip().lower().startswith(_arg(kwargs, "prompt_to_repeat", str).strip().lower())


def _end_checker(text: str, kwargs: dict[str, Any]) -> bool:
    return text.strip().strip('"').lower().endswith(_arg(kwargs, "end_phrase", str).strip().lower())


def _capital_word_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    # nltk's word_tokenize in Llama Stack: words and punctuation runs; only words can be all capitals.
    capitals = sum(1 for word in re.findall(r"\w+", text) if word.isupper())
    return _compare(capitals, kwargs, "capital_frequency", "capital_relation")


def _english_capital(text: str, kwargs: dict[str, Any]) -> bool:
    return text.isupper()


def _english_lowercase(text: str, kwargs: dict[str, Any]) -> bool:
    return text.islower()


def _no_comma(text: str, kwargs: dict[str, Any]) -> bool:
    return "," not in text


def _quotation(text: str, kwargs: dict[str, Any]) -> bool:
    value = text.strip()
    return len(value) > 1 and value[0] in '"\u201c\u300c\u00ab' and value[-1] in '"\u201d\u300d\u00bb'


INSTRUCTIONS: dict[str, Check] = {
    "keywords:existence": _keywords_existence,
    "keywords:frequency": _keyword_frequency,
    "keywords:forbidden_words": _forbidden_words,
    "keywords:letter_frequency": _letter_frequency,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "length_constraints:number_words": _number_words,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "detectable_content:number_placeholders": _number_placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _number_bullet_lists,
    "detectable_format:constrained_response": _constrained_response,
    "detectable_format:number_highlighted_sections": _number_highlighted_sections,
    "detectable_format:multiple_sections": _multiple_sections,
    "detectable_format:json_format": _json_format,
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": _repeat_prompt,
    "startend:end_checker": _end_checker,
    "startend:quotation": _quotation,
    "change_case:capital_word_frequency": _capital_word_frequency,
    "change_case:english_capital": _english_capital,
    "change_case:english_lowercase": _english_lowercase,
    "punctuation:no_comma": _no_comma,
}


def instruction_args(row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The row's (instruction id, kwargs) pairs; ValueError when the columns do not have that shape."""
    ids = row["instruction_id_list"]
    kwargs = row["kwargs"]
    if isinstance(ids, str) or isinstance(kwargs, str):  # a CSV dataset holds them as JSON text
        ids = json.loads(ids) if isinstance(ids, str) else ids
        kwargs = json.loads(kwargs) if isinstance(kwargs, str) else kwargs
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("instruction_id_list is not a list of instruction ids")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise ValueError("kwargs is not a list of one object per instruction")
    # Llama Stack drops null arguments (IFEval's data sets every argument of every instruction).
    return [(i, {k: v for k, v in args.items() if v is not None}) for i, args in zip(ids, kwargs, strict=True)]


def score_instructions(answer: str, instructions: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The score row: the share of known instructions followed, their count as the weight, and the
    ids it could not check. InstructionArgsError when a known instruction's kwargs do not suit it."""
    answer = answer.strip()
    followed: list[bool] = []
    unsupported: list[str] = []
    for instruction_id, kwargs in instructions:
        check = INSTRUCTIONS.get(instruction_id)
        if check is None:
            unsupported.append(instruction_id)
            continue
        try:
            result = check(answer, kwargs)
        except InstructionArgsError as exc:
            raise InstructionArgsError(f"{instruction_id} {exc}") from None
        followed.append(bool(answer) and result)
    row: dict[str, Any] = {
        "score": sum(followed) / len(followed) if followed else 0.0,
        "weight": float(len(followed)),
    }
    if unsupported:
        row["unsupported_instructions"] = unsupported
    return row
