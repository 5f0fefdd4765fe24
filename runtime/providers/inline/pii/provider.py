"""inline::pii: personal data and secrets, detected (a blocking violation) or redacted (a warning).

Shield params: `mode` (`detect`, the default, or `redact`: the violation is a warning whose
metadata carries the text with each finding replaced by `[CATEGORY]`), and `categories` (a
subset of detectors.CATEGORIES; default all).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import ProviderContext, ServedShield, ShieldMessage, Stateless, Verdict
from pocketstack.providers.inline.pii import detectors
from pocketstack.providers.inline.pii.config import PiiConfig

MODES = ("detect", "redact")


class PiiShield(Stateless):
    def __init__(self, config: PiiConfig, context: ProviderContext) -> None:
        self.provider_id = context.provider_id

    async def check_shield(self, provider_resource_id: str, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - {"mode", "categories"})
        if unknown:
            raise BadRequestError(f"inline::pii shields take `mode` and `categories`, not {unknown}", param="params")
        mode = params.get("mode", "detect")
        if mode not in MODES:
            raise BadRequestError(f"params.mode is detect or redact, not {mode!r}", param="params")
        categories = params.get("categories", list(detectors.CATEGORIES))
        if not isinstance(categories, list) or not categories or set(categories) - set(detectors.CATEGORIES):
            raise BadRequestError(
                f"params.categories is a non-empty list of {', '.join(detectors.CATEGORIES)}", param="params"
            )
        return {"mode": mode, "categories": categories}

    async def run_shield(self, shield: ServedShield, messages: list[ShieldMessage]) -> Verdict:
        verdicts = await self.run_moderation(shield, [message.text for message in messages])
        flagged = [v for v in verdicts if v.flagged]
        if not flagged:
            return Verdict(flagged=False)
        categories = {name: any(v.categories.get(name) for v in verdicts) for name in verdicts[0].categories}
        metadata: dict[str, Any] = {
            "violation_type": ",".join(name for name, hit in categories.items() if hit),
            "findings": [
                {**finding, "message_index": index}
                for index, verdict in enumerate(verdicts)
                for finding in verdict.metadata.get("findings", [])
            ],
        }
        if shield.params.get("mode") == "redact":
            metadata["redacted_messages"] = [
                v.metadata.get("redacted_text", m.text) for v, m in zip(verdicts, messages, strict=True)
            ]
        return Verdict(
            flagged=True,
            categories=categories,
            category_scores={name: 1.0 if hit else 0.0 for name, hit in categories.items()},
            violation_level=flagged[0].violation_level,
            user_message=flagged[0].user_message and _message(categories, shield.params.get("mode")),
            metadata=metadata,
        )

    async def run_moderation(self, shield: ServedShield, texts: list[str]) -> list[Verdict]:
        wanted = frozenset(shield.params.get("categories", detectors.CATEGORIES))
        redacting = shield.params.get("mode") == "redact"
        found = await asyncio.to_thread(lambda: [detectors.find(text, wanted) for text in texts])
        verdicts = []
        for text, findings in zip(texts, found, strict=True):
            hits = {f.category for f in findings}
            categories = {name: name in hits for name in detectors.CATEGORIES if name in wanted}
            metadata: dict[str, Any] = {
                "findings": [{"category": f.category, "kind": f.kind, "start": f.start, "end": f.end} for f in findings]
            }
            if hits:
                metadata["violation_type"] = ",".join(sorted(hits))
            if redacting:
                metadata["redacted_text"] = detectors.redact(text, findings)
            verdicts.append(
                Verdict(
                    flagged=bool(hits),
                    categories=categories,
                    category_scores={name: 1.0 if hit else 0.0 for name, hit in categories.items()},
                    violation_level="warn" if redacting else "error",
                    user_message=_message(categories, shield.params.get("mode")) if hits else None,
                    metadata=metadata,
                )
            )
        return verdicts


def _message(categories: dict[str, bool], mode: Any) -> str:
    found = ", ".join(detectors.LABELS[name] for name, hit in categories.items() if hit)
    if mode == "redact":
        return f"The text contained {found}; it was redacted."
    return f"I can't process that: the text contains {found}. Remove it and try again."
