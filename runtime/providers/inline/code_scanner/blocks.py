"""Code in chat text: fenced Markdown blocks with their language tags, else the whole text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<tag>[\w+#.-]*)[^\n]*\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)

# Markdown tags -> CodeShield's language names.
TAGS: dict[str, str] = {
    "c": "c", "h": "c", "cpp": "cpp", "c++": "cpp", "cc": "cpp", "hpp": "cpp", "cxx": "cpp",
    "cs": "csharp", "csharp": "csharp", "c#": "csharp", "hack": "hack", "java": "java",
    "js": "javascript", "javascript": "javascript", "jsx": "javascript", "ts": "javascript",
    "typescript": "javascript", "node": "javascript", "kotlin": "kotlin", "kt": "kotlin",
    "objc": "objective_c", "objective-c": "objective_c", "objective_c": "objective_c",
    "objcpp": "objective_cpp", "objective-cpp": "objective_cpp", "php": "php", "py": "python",
    "python": "python", "python3": "python", "py3": "python", "rb": "ruby", "ruby": "ruby",
    "rs": "rust", "rust": "rust", "swift": "swift", "xml": "xml",
}  # fmt: skip


@dataclass(frozen=True)
class CodeBlock:
    code: str
    language: str | None  # a CodeShield language name; None: unknown, scan with every language's rules


def code_blocks(text: str) -> list[CodeBlock]:
    """The fenced blocks of `text`; a text without fences is taken as one block of unknown language."""
    blocks = [
        CodeBlock(match.group("code"), TAGS.get(match.group("tag").lower()))
        for match in _FENCE.finditer(text)
        if match.group("code").strip()
    ]
    if blocks or "```" in text or "~~~" in text:
        return blocks
    return [CodeBlock(text, None)] if text.strip() else []
