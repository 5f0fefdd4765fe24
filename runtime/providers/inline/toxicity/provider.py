"""inline::toxicity: offensive language, scored by alt-profanity-check's bundled classifier.

The classifier (a linear SVM over TF-IDF features, calibrated) gives each text the probability
that it is offensive; a text at or over the shield's `threshold` is flagged. The score is in
`category_scores.toxicity` whether flagged or not, so callers can pick their own cut-off.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import ProviderContext, ServedShield, ShieldMessage, Stateless, Verdict
from pocketstack.providers.inline.toxicity.config import ToxicityConfig

CATEGORY = "toxicity"
REFUSAL = "I can't respond to that: the text reads as offensive."

_load_lock = threading.Lock()


def _classifier() -> Callable[[list[str]], Any]:
    # Imported on first use: scikit-learn takes about two seconds to load, start-up should not wait for it.
    with _load_lock:
        from profanity_check import predict_prob

    return predict_prob  # type: ignore[no-any-return]


class ToxicityShield(Stateless):
    def __init__(self, config: ToxicityConfig, context: ProviderContext) -> None:
        self.config = config

    async def check_shield(self, provider_resource_id: str, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - {"threshold"})
        if unknown:
            raise BadRequestError(f"inline::toxicity shields take `threshold`, not {unknown}", param="params")
        threshold = params.get("threshold", self.config.threshold)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
            raise BadRequestError("params.threshold is a probability between 0 and 1 (exclusive)", param="params")
        return {"threshold": float(threshold)}

    async def _scores(self, texts: list[str]) -> list[float]:
        def score() -> list[float]:
            return [float(p) for p in _classifier()(texts)]

        return await asyncio.to_thread(score)

    async def run_moderation(self, shield: ServedShield, texts: list[str]) -> list[Verdict]:
        threshold = float(shield.params.get("threshold", self.config.threshold))
        verdicts = []
        for probability in await self._scores(texts):
            flagged = probability >= threshold
            verdicts.append(
                Verdict(
                    flagged=flagged,
                    categories={CATEGORY: flagged},
                    category_scores={CATEGORY: round(probability, 6)},
                    violation_level="error",
                    user_message=REFUSAL if flagged else None,
                    metadata={"violation_type": CATEGORY, "threshold": threshold} if flagged else {},
                )
            )
        return verdicts

    async def run_shield(self, shield: ServedShield, messages: list[ShieldMessage]) -> Verdict:
        verdicts = await self.run_moderation(shield, [m.text for m in messages])
        worst = max(range(len(verdicts)), key=lambda i: verdicts[i].category_scores[CATEGORY])
        verdict = verdicts[worst]
        if verdict.flagged:
            verdict.metadata["message_index"] = worst
        return verdict
