from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.code_scanner.config import CodeScannerConfig


def create(config: CodeScannerConfig, context: ProviderContext) -> Provider:
    from pocketstack.providers.inline.code_scanner.provider import CodeScannerShield

    return CodeScannerShield(config, context)


SPEC = ProviderSpec(
    api="safety",
    provider_type="inline::code-scanner",
    description="Insecure code in messages (fenced blocks, or the whole text) found by Meta's CodeShield: "
    "regex and semgrep rules for weak crypto, injection, unsafe deserialization... (offline).",
    config_model=CodeScannerConfig,
    create=create,
    requires=("codeshield",),
    extra="codeshield",
)
