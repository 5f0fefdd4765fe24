from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.eval_builtin.config import BuiltinEvalConfig


def create(config: BuiltinEvalConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.eval_builtin.provider import BuiltinEval

    return BuiltinEval(config, context)


SPEC = ProviderSpec(
    api="eval",
    provider_type="inline::builtin",
    description="Runs benchmarks on a model or an agent: rows generated concurrently, scored, kept as a dataset; "
    "jobs resume after a restart.",
    config_model=BuiltinEvalConfig,
    create=create,
)
