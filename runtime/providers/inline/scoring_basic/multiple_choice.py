"""Llama Stack's multiple-choice answer regexes: "Answer: B" in the languages of its benchmarks
(MMLU, Global MMLU, MMMLU...), each followed by a letter A-D in Latin, Arabic, Bengali or
full-width script. The first group of the first regex that matches is the parsed answer."""

from __future__ import annotations

# As Llama Stack lists them (fn_defs/regex_parser_multiple_choice_answer.py), duplicates included:
# the order is part of the function (the first match wins).
MULTILINGUAL_ANSWER_REGEXES = [
    r"The best answer is ",
    r"Answer\s*:",
    "Answer\\s*:\u200b\u200b\u200b\u200b\u200b\u200b",  # Korean invisible character (zero-width spaces)
    r"উত্তর\s*:",
    r"उत्तर\s*:",
    r"উত্তরঃ",
    r"উত্তর\s*:",
    r"Antwort\s*:",
    r"답변\s*:",
    r"정답\s*:",
    r"답\s*:",
    r"答案\s*：",  # noqa: RUF001 - the full-width colon is the point
    r"答案\s*:",
    r"答\s*：",  # noqa: RUF001
    r"答\s*:",
    r"答复\s*：",  # noqa: RUF001
    r"答曰\s*：",  # noqa: RUF001
    r"الإجابة:",
    r"الجواب:",
    r"إجابة:",
    r"الإجابة النهائية:",
    r"الإجابة الصحيحة:",
    r"الإجابة الصحيحة هي:",
    r"الإجابة هي:",
    r"Respuesta\s*:",
    r"Risposta\s*:",
    r"答え\s*:",
    r"答え\s*：",  # noqa: RUF001
    r"回答\s*:",
    r"回答\s*：",  # noqa: RUF001
    r"解答\s*:",
    r"Jawaban\s*:",
    r"Réponse\s*:",
    r"Resposta\s*:",
    r"Jibu\s*:",
    r"Idahun\s*:",
    r"Ìdáhùn\s*:",
    r"Idáhùn\s*:",
    "A\u0300m\u1ecd\u0300na\u0300\\s*:",  # Yoruba, decomposed as Llama Stack writes it
    r"Àdáhùn\s*:",
    "A\u0300nu\u0301go\u0323\\s*:",
    r"Àṣàyàn\s*:",
]

MULTILINGUAL_ANSWER_PATTERN_TEMPLATE = r"(?i){}\s*([A-D]|[أ-د]|[অ]|[ব]|[ড]|[ঢ]|[Ａ]|[Ｂ]|[Ｃ]|[Ｄ])"  # noqa: RUF001

MULTIPLE_CHOICE_REGEXES = [MULTILINGUAL_ANSWER_PATTERN_TEMPLATE.format(label) for label in MULTILINGUAL_ANSWER_REGEXES]
