"""Text out of the `openai` client's item types, whose unions are too wide to index directly."""

from __future__ import annotations


def text_of(part: object) -> str:
    """The text of a content part (input_text, output_text, text, ...): any part without one fails."""
    text = getattr(part, "text", None)
    assert isinstance(text, str), part
    return text


def first_text(item: object) -> str:
    """The text of an item's first content part: a message, as a response or conversation lists it."""
    content = getattr(item, "content", None)
    assert isinstance(content, list) and content, item
    return text_of(content[0])
