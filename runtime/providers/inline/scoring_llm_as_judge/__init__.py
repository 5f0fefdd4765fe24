from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.scoring_llm_as_judge.config import LlmAsJudgeScoringConfig


def create(config: LlmAsJudgeScoringConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.scoring_llm_as_judge.provider import LlmAsJudgeScoring

    return LlmAsJudgeScoring(config, context)


SPEC = ProviderSpec(
    api="scoring",
    provider_type="inline::llm-as-judge",
    description="A registered chat model judges each answer from a prompt template; the score is what a regex "
    "reads from its verdict (any model inference serves: inline, remote, with fallbacks).",
    config_model=LlmAsJudgeScoringConfig,
    create=create,
)
