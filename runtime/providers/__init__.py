"""The built-in providers, listed explicitly so a frozen binary's analysis sees every import."""

from __future__ import annotations

from pocketstack.providers.base import ProviderSpec
from pocketstack.providers.inline import (
    code_scanner,
    datasetio_localfs,
    eval_builtin,
    file_search,
    llama_cpp,
    llama_guard,
    localfs,
    pii,
    pypdf,
    scoring_basic,
    scoring_llm_as_judge,
    sqlite_vec,
    toxicity,
)
from pocketstack.providers.remote import mcp, pgvector, web_search
from pocketstack.providers.remote.catalog import REMOTES

PROVIDERS: dict[str, ProviderSpec] = {
    spec.provider_type: spec
    for spec in (
        llama_cpp.SPEC,
        localfs.SPEC,
        sqlite_vec.SPEC,
        pii.SPEC,
        llama_guard.SPEC,
        code_scanner.SPEC,
        toxicity.SPEC,
        pgvector.SPEC,
        file_search.SPEC,
        scoring_basic.SPEC,
        scoring_llm_as_judge.SPEC,
        web_search.TAVILY,
        web_search.BRAVE,
        mcp.SPEC,
        eval_builtin.SPEC,
        pypdf.SPEC,
        *REMOTES,
    )
}

# Provider types Llama Stack uses for two APIs (inline::localfs serves files and datasetio):
# looked up by (api, provider_type) before PROVIDERS.
SHARED_TYPES: dict[tuple[str, str], ProviderSpec] = {
    (spec.api, spec.provider_type): spec for spec in (datasetio_localfs.SPEC,)
}

__all__ = ["PROVIDERS", "SHARED_TYPES", "ProviderSpec"]
