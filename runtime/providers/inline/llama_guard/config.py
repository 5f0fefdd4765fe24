from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pocketstack.providers.inline.llama_guard.taxonomy import CATEGORIES


class LlamaGuardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Category codes (S1..S14) no shield of this provider checks; a shield may exclude more.
    excluded_categories: list[str] = Field(default_factory=list)
    # Send a GBNF grammar with each classification so any chat model answers in the verdict's
    # shape (inline::llama-cpp and llama.cpp servers enforce it). Turn off for upstreams that
    # reject unknown request fields.
    output_grammar: bool = True
    max_tokens: int = Field(default=32, ge=8, le=512)

    @field_validator("excluded_categories")
    @classmethod
    def _known_codes(cls, codes: list[str]) -> list[str]:
        unknown = sorted(set(codes) - set(CATEGORIES))
        if unknown:  # checked with the run config, before anything starts
            raise ValueError(f"{', '.join(unknown)} not in S1..S14")
        return [code for code in CATEGORIES if code in codes]
