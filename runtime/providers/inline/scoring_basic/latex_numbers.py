r"""The value of a numeric LaTeX expression (`\frac{1}{2}`, `2^{10}`, `\sqrt{2}`, `3\cdot\pi`), or None.

Llama Stack evaluates math answers with sympy's `parse_latex` when sympy (and antlr) are installed;
its basic scoring provider does not require them. PocketStack ships no sympy: this reads the
numeric subset that decides math answers (numbers, + - * / ^, \frac, \sqrt, \cdot, \times, \div,
\pi, brackets, implicit products) and answers None for anything else (a variable, a function it
does not know, a division by zero), where sympy would not give a number either.
"""

from __future__ import annotations

import math
import re

TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(\\[a-zA-Z]+)|(\S))")
MAX_LENGTH = 200  # answers are short; a long expression is not a number worth reading
PRODUCTS = {"*", "\\cdot", "\\times"}
QUOTIENTS = {"/", "\\div"}
STARTS_ATOM = {"(", "{", "\\pi", "\\frac", "\\sqrt"}


class _NotNumeric(Exception):
    pass


def _tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:  # only trailing whitespace is left
            break
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    return tokens


class _Reader:
    """Recursive descent over the tokens: expression > term > signed > power > atom."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _NotNumeric
        self.at += 1
        return token

    def expression(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> float:
        value = self.signed()
        while True:
            token = self.peek()
            if token in PRODUCTS:
                self.take()
                value *= self.signed()
            elif token in QUOTIENTS:
                self.take()
                value /= self.signed()
            elif token is not None and (token in STARTS_ATOM or token[0].isdigit() or token[0] == "."):
                value *= self.signed()  # 2\pi, 3(4+1): an implicit product
            else:
                return value

    def signed(self) -> float:
        if self.peek() in ("+", "-"):
            return -self.signed() if self.take() == "-" else self.signed()
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.group() if self.peek() == "{" else self.signed()
        return math.pow(base, exponent)

    def group(self) -> float:
        """A braced argument (`{...}`), or the single token LaTeX allows without braces."""
        if self.peek() == "{":
            self.take()
            value = self.expression()
            self.take("}")
            return value
        return self.atom()

    def atom(self) -> float:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return float(token)
        if token in ("(", "{"):
            value = self.expression()
            self.take(")" if token == "(" else "}")
            return value
        if token == "\\pi":
            return math.pi
        if token == "\\frac":
            numerator = self.group()
            return numerator / self.group()
        if token == "\\sqrt":
            if self.peek() == "[":
                self.take()
                degree = self.expression()
                self.take("]")
                return math.pow(self.group(), 1 / degree)
            return math.sqrt(self.group())
        raise _NotNumeric


def latex_value(text: str) -> float | None:
    """The expression's value, or None when it is not a number this reader knows how to compute."""
    if not text or len(text) > MAX_LENGTH:
        return None
    reader = _Reader(_tokens(text))
    try:
        value = reader.expression()
    except (_NotNumeric, ZeroDivisionError, OverflowError, ValueError):
        return None
    if reader.peek() is not None or not math.isfinite(value):
        return None
    return value
