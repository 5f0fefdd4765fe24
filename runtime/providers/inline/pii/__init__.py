from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.pii.config import PiiConfig


def create(config: PiiConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.pii.provider import PiiShield

    return PiiShield(config, context)


SPEC = ProviderSpec(
    api="safety",
    provider_type="inline::pii",
    description="Personal data and secrets in text: emails, phone numbers, payment cards (Luhn), IBANs (mod 97), "
    "national ids, API keys and tokens (detect-secrets); detect or redact (offline).",
    config_model=PiiConfig,
    create=create,
)
