"""Llama Guard 3: its hazard taxonomy, its prompt, the grammar of its answer, and the answer parsed.

The prompt is Meta's Llama Guard 3 template, as Llama Stack builds it: the categories a shield
checks (excluded ones left out, the others keeping their codes), the conversation as `User:` /
`Agent:` turns, and the instruction to judge only the last turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

# OpenAI's moderation categories (and Llama Stack's custom/ ones) in terms of the codes, as Llama Stack maps them.
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "violence": ("S1",),
    "violence/graphic": ("S1",),
    "harassment": ("S4",),
    "harassment/threatening": ("S1", "S4"),
    "hate": ("S10",),
    "hate/threatening": ("S10", "S1"),
    "illicit": ("S2",),
    "illicit/violent": ("S1", "S9"),
    "sexual": ("S3", "S12"),
    "sexual/minors": ("S4",),
    "self-harm": ("S11",),
    "self-harm/intent": ("S11",),
    "self-harm/instructions": ("S11", "S6"),
    "custom/defamation": ("S5",),
    "custom/specialized_advice": ("S6",),
    "custom/privacy_violation": ("S7",),
    "custom/intellectual_property": ("S8",),
    "custom/weapons": ("S9",),
    "custom/elections": ("S13",),
    "custom/code_interpreter_abuse": ("S14",),
}

REFUSAL = "I can't answer that. Can I help with something else?"

_TEMPLATE = """Task: Check if there is unsafe content in '{agent}' messages in conversations according our safety \
policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{conversation}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST {agent} message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""


@dataclass(frozen=True)
class Turn:
    speaker: str  # "User" or "Agent"
    text: str


def checked_codes(excluded: Iterable[str]) -> list[str]:
    left_out = set(excluded)
    return [code for code in CATEGORIES if code not in left_out]


def prompt(turns: list[Turn], codes: list[str]) -> str:
    categories = "\n".join(f"{code}: {CATEGORIES[code]}." for code in codes)
    conversation = "\n\n".join(f"{turn.speaker}: {turn.text}" for turn in turns)
    return _TEMPLATE.format(agent=turns[-1].speaker, categories=categories, conversation=conversation)


def grammar(codes: list[str]) -> str:
    """GBNF admitting exactly `safe`, or `unsafe` and a comma-separated list of the checked codes."""
    alternatives = " | ".join(f'"{code}"' for code in sorted(codes, key=len, reverse=True))
    return f'root ::= "safe" | "unsafe\\n" code ("," code)*\ncode ::= {alternatives}\n'


class UnreadableVerdict(ValueError):
    """The model's answer is neither `safe` nor `unsafe` with category codes."""


def parse(answer: str) -> list[str]:
    """The violated codes in a Llama Guard answer (empty when safe), in the order given, without repeats."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        raise UnreadableVerdict("an empty answer")
    head = lines[0].lower()
    if head == "safe":
        return []
    if head != "unsafe":
        raise UnreadableVerdict(f"{answer.strip()[:80]!r}")
    if len(lines) < 2:
        raise UnreadableVerdict("'unsafe' without categories")
    codes: list[str] = []
    for raw in lines[1].replace(" ", "").split(","):
        code = raw.upper()
        if code not in CATEGORIES:
            raise UnreadableVerdict(f"an unknown category {raw!r}")
        if code not in codes:
            codes.append(code)
    return codes


def openai_categories(codes: Iterable[str]) -> dict[str, bool]:
    hit = set(codes)
    return {name: bool(hit.intersection(mapped)) for name, mapped in OPENAI_CATEGORIES.items()}
