from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.scoring_basic.config import BasicScoringConfig


def create(config: BasicScoringConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.scoring_basic.provider import BasicScoring

    return BasicScoring(config, context)


SPEC = ProviderSpec(
    api="scoring",
    provider_type="inline::basic",
    description="Scoring without a model: equality, subset, multiple-choice and math answers parsed by regex, "
    "DocVQA answers, IFEval instructions (offline).",
    config_model=BasicScoringConfig,
    create=create,
)
