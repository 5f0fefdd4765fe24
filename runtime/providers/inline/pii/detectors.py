"""Finding personal data and secrets in text, each finding a category and a span.

Patterns alone flag too much (any 16 digits look like a card), so every candidate with a check
digit is verified: payment cards by Luhn, IBANs by ISO 7064 mod 97, US social security numbers
by their reserved ranges. Secrets come from detect-secrets' token detectors (AWS, GitHub,
GitLab, Slack, Stripe, JWT, private keys, `password = ...` and more; its entropy detectors are
left out, they flag ordinary words in prose) plus the key formats it does not know yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

CATEGORIES = ("email", "phone_number", "payment_card", "iban", "national_id", "secret")
LABELS = {
    "email": "an email address",
    "phone_number": "a phone number",
    "payment_card": "a payment card number",
    "iban": "a bank account number (IBAN)",
    "national_id": "a national identity number",
    "secret": "a secret (API key, token or password)",
}

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]\d{2,4}){1,5}(?![\w-])")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
EXTRA_SECRETS = re.compile(
    r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"  # OpenAI and Anthropic keys
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face tokens
    r"|gh[pousr]_[A-Za-z0-9]{30,})"  # GitHub tokens (detect-secrets reports only their prefix)
)


@dataclass(frozen=True)
class Finding:
    category: str
    start: int
    end: int
    kind: str  # what exactly, e.g. "AWS Access Key"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def find(text: str, categories: frozenset[str]) -> list[Finding]:
    """Every finding in the wanted categories, longest first where they overlap."""
    found = [f for f in _candidates(text) if f.category in categories]
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for finding in found:  # a card number is not also a phone number
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def redact(text: str, findings: list[Finding]) -> str:
    parts, cursor = [], 0
    for finding in findings:
        parts += [text[cursor : finding.start], f"[{finding.category.upper()}]"]
        cursor = finding.end
    return "".join(parts) + text[cursor:]


def _candidates(text: str) -> Iterator[Finding]:
    yield from _secrets(text)  # first: a key is not also a phone number
    for match in EMAIL.finditer(text):
        yield Finding("email", *match.span(), "email address")
    for match in IBAN.finditer(text):
        if iban_valid(match.group()):
            yield Finding("iban", *match.span(), f"IBAN ({match.group()[:2]})")
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield Finding("payment_card", *match.span(), "payment card")
    for match in SSN.finditer(text):
        yield Finding("national_id", *match.span(), "US social security number")
    for match in NINO.finditer(text):
        yield Finding("national_id", *match.span(), "UK national insurance number")
    for match in PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        international = match.group().startswith("+")
        if (international and 8 <= len(digits) <= 15) or len(digits) == 10:
            yield Finding("phone_number", *match.span(), "phone number")


def _secrets(text: str) -> Iterator[Finding]:
    for match in EXTRA_SECRETS.finditer(text):
        yield Finding("secret", *match.span(), "API key")
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    detectors: dict[str, type] = get_mapping_from_secret_type_to_class()
    names = [plugin.__name__ for plugin in detectors.values()]
    plugins = [{"name": name} for name in names if "HighEntropy" not in name and name != "IPPublicDetector"]
    offset = 0
    with transient_settings({"plugins_used": plugins}):
        for line in text.splitlines(keepends=True):
            for secret in scan_line(line):
                value = secret.secret_value or ""
                at = line.find(value) if value else -1
                if at >= 0:  # the whole token around the reported value
                    start, end = at, at + len(value)
                    while start > 0 and not line[start - 1].isspace() and line[start - 1] not in "'\"=:":
                        start -= 1
                    while end < len(line) and not line[end].isspace() and line[end] not in "'\",;":
                        end += 1
                    yield Finding("secret", offset + start, offset + end, secret.type)
            offset += len(line)
