r"""Math answers normalised as Llama Stack's regex_parser_math_response does (its utils/math_utils.py,
itself Minerva's and Hendrycks MATH's normalisation): the answer parsed from the response (the
function's regex, else the last `\boxed{}`), units and LaTeX decoration dropped, shorthand TeX
completed (`\frac12` -> `\frac{1}{2}`, `\sqrt3` -> `\sqrt{3}`, `a/b` -> `\frac{a}{b}`), then
numeric LaTeX evaluated, so `0.5`, `\frac{1}{2}` and `\dfrac12` compare equal.

One difference: Llama Stack formats an evaluated value with `.2e` (3 significant figures, so 1234
and 1235 would match); PocketStack keeps 10, enough to absorb float noise and no more.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pocketstack.providers.inline.scoring_basic.latex_numbers import latex_value

# The answer format Llama Stack's math function asks for, its one default regex.
MATH_ANSWER_REGEXES = [r".*final answer is:?\s*\$\\boxed{(?P<X>.*)}\$"]

SUBSTITUTIONS = [
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
]  # fmt: skip

REMOVED_EXPRESSIONS = [
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots", "sue",
    "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges",
    "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2",
    "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;", r",\!", "{,}", '"',
    "\\dots",
]  # fmt: skip

FRACTION = re.compile(r"\\frac{([^}]+)}{([^}]+)}")
SIGNIFICANT = ".10g"


def _formatted(value: float) -> str:
    return format(value, SIGNIFICANT)


def try_evaluate_frac(expression: str) -> str:
    r"""Each `\frac{a}{b}` with numeric a and b replaced by its value."""
    evaluated = expression
    for match in FRACTION.finditer(expression):
        try:
            value = float(match.group(1)) / float(match.group(2))
        except (ValueError, ZeroDivisionError):
            continue
        evaluated = evaluated.replace(match.group(), _formatted(value), 1)
    return evaluated


def try_evaluate_latex(expression: str) -> str:
    """The expression's value when it is a number (latex_numbers.py), else the expression."""
    value = latex_value(expression)
    return expression if value is None else _formatted(value)


def first_answer(text: str, markers: Sequence[str] = ("Q:", "A:")) -> str:
    """The text before the first marker: a response that goes on to ask and answer itself is cut there."""
    for marker in markers:
        text = text.split(marker)[0]
    return text


def extract_result_from_boxed(answer: str) -> str:
    r"""The content of the last `\boxed{...}` (or `\boxed <value>$`), braces balanced; "" when there is none."""
    start = answer.rfind("\\boxed")
    if start < 0:
        return ""
    answer = answer[start + len("\\boxed") :].strip()
    braced = answer.startswith("{")
    depth = 0
    for index, char in enumerate(answer):
        depth += (char == "{") - (char == "}")
        if depth == 0 and braced:
            answer = answer[: index + 1].strip()
            break
        if depth == 0 and char == "$":
            answer = answer[:index].strip()
            break
    else:
        return ""
    while answer.startswith("{") and answer.endswith("}"):
        answer = answer[1:-1].strip()
    return answer


def normalize_final_answer(final_answer: str, regex_pattern: str, match_first: bool = True) -> str:
    """The answer `regex_pattern` finds (else the boxed one, else the whole text), normalised."""
    found = re.findall(regex_pattern, final_answer)
    extraction: str
    if found:
        chosen = found[0] if match_first else found[-1]
        extraction = chosen[0] if isinstance(chosen, tuple) else chosen  # several groups: the first
    else:
        extraction = extract_result_from_boxed(final_answer)
    if not extraction:
        return final_answer
    final_answer = extraction.split("=")[-1]
    for before, after in SUBSTITUTIONS:
        final_answer = final_answer.replace(before, after)
    for expression in REMOVED_EXPRESSIONS:
        final_answer = final_answer.replace(expression, "")
    # The answer inside LaTeX math, bold, a box...
    final_answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", final_answer)
    final_answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", final_answer)
    # Shorthand TeX: \fracab -> \frac{a}{b}, \sqrta -> \sqrt{a}.
    final_answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", final_answer)
    final_answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", final_answer)
    final_answer = final_answer.replace("$", "")
    if final_answer.replace(",", "").isdigit():  # 100,000 -> 100000
        final_answer = final_answer.replace(",", "")
    if re.match(r"\([a-zA-Z]\)", final_answer):  # a choice in parentheses: (a) -> a
        final_answer = final_answer[1]
    return _normalise_result(final_answer)


def _normalise_result(string: str) -> str:
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    for variant in ("cfrac", "tfrac", "dfrac"):
        string = string.replace(variant, "frac")
    # As Llama Stack's: "\le" goes too (it was meant for what is left of "\left").
    for decoration in ("\\left", "\\le", "\\right", "^{\\circ}", "^\\circ", "\\$"):
        string = string.replace(decoration, "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    string = string.split("=")[-1]  # "k = 3" -> "3"
    string = _fix_sqrt(string).replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def _remove_right_units(string: str) -> str:
    # "\text{ " only ever introduces units (in the MATH data set).
    splits = string.split("\\text{ ")
    return splits[0] if len(splits) == 2 else string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    fixed = splits[0]
    for split in splits[1:]:
        if not split:
            return string
        fixed += "\\sqrt" + split if split[0] == "{" else "\\sqrt{" + split[0] + "}" + split[1:]
    return fixed


def _fix_fracs(string: str) -> str:
    r"""\frac1b, \frac12 -> \frac{1}{b}, \frac{1}{2}; \frac1{72} -> \frac{1}{72}."""
    parts = string.split("\\frac")
    fixed = parts[0]
    for part in parts[1:]:
        fixed += "\\frac"
        if not part:
            return string
        if part[0] == "{":
            fixed += part
            continue
        if len(part) < 2:
            return string
        numerator, denominator, rest = part[0], part[1], part[2:]
        fixed += "{" + numerator + "}" + ("{" + denominator + "}" if denominator != "{" else denominator) + rest
    return fixed


def _fix_a_slash_b(string: str) -> str:
    parts = string.split("/")
    if len(parts) != 2:
        return string
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        return string
    if string != f"{numerator}/{denominator}":
        return string
    return "\\frac{" + str(numerator) + "}{" + str(denominator) + "}"


def math_answers_match(generated_answer: str, expected_answer: str, parsing_regex: str) -> bool:
    """Whether the response's answer (found by `parsing_regex`) equals the expected one, both normalised."""
    generated = normalize_final_answer(first_answer(generated_answer), parsing_regex, match_first=True)
    expected = normalize_final_answer(expected_answer, r".*")
    return try_evaluate_frac(try_evaluate_latex(generated)) == try_evaluate_frac(try_evaluate_latex(expected))
