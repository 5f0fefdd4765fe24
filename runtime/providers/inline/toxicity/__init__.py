from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.toxicity.config import ToxicityConfig


def create(config: ToxicityConfig, context: ProviderContext) -> Provider:
    from pocketstack.providers.inline.toxicity.provider import ToxicityShield

    return ToxicityShield(config, context)


SPEC = ProviderSpec(
    api="safety",
    provider_type="inline::toxicity",
    description="Offensive language scored by alt-profanity-check's bundled linear classifier "
    "(the probability in category_scores; offline, sub-millisecond).",
    config_model=ToxicityConfig,
    create=create,
    requires=("profanity_check",),
    extra="toxicity",
)
