"""inline::llama-guard: a registered chat model asked the Llama Guard 3 question, its answer parsed.

A shield's `provider_resource_id` is the model (any chat model the stack serves: a Llama Guard
GGUF registered by path, or a remote one); its params may exclude categories. The model runs
through the inference API, so fallbacks and remote providers apply as they do for chat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError, ResourceNotFoundError, ServiceUnavailableError, UpstreamError
from pocketstack.providers.base import ProviderContext, ServedShield, ShieldMessage, Stateless, Verdict
from pocketstack.providers.inline.llama_guard import taxonomy
from pocketstack.providers.inline.llama_guard.config import LlamaGuardConfig
from pocketstack.providers.inline.llama_guard.taxonomy import Turn, UnreadableVerdict

log = logging.getLogger(__name__)
_SPEAKERS = {"user": "User", "tool": "User", "assistant": "Agent"}  # system prompts are not judged


def _excluded(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
        raise BadRequestError("params.excluded_categories is a list of codes such as S6", param="params")
    unknown = sorted({code for code in value if code not in taxonomy.CATEGORIES})
    if unknown:
        raise BadRequestError(f"params.excluded_categories: {', '.join(unknown)} not in S1..S14", param="params")
    return [code for code in taxonomy.CATEGORIES if code in value]


class LlamaGuardShield(Stateless):
    def __init__(self, config: LlamaGuardConfig, context: ProviderContext) -> None:
        self.config = config
        self.routers = context.routers
        self.excluded = config.excluded_categories  # known codes, in taxonomy order (the config checks)

    async def check_shield(self, provider_resource_id: str, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - {"excluded_categories"})
        if unknown:
            raise BadRequestError(
                f"inline::llama-guard shields take `excluded_categories`, not {unknown}", param="params"
            )
        excluded = sorted(set(self.excluded) | set(_excluded(params.get("excluded_categories", []))))
        if not taxonomy.checked_codes(excluded):
            raise BadRequestError("Excluding every category leaves the shield nothing to check.", param="params")
        # A model not registered yet is allowed: remote providers' models are listed in the background.
        try:
            model = await self.routers.models.get_model(models.GetModelRequest(model_id=provider_resource_id))
        except ResourceNotFoundError:
            log.info("llama-guard shield over %s: the model is not registered yet", provider_resource_id)
        else:
            if model.model_type != "llm":
                raise BadRequestError(
                    f"A llama-guard shield runs a chat model; '{model.identifier}' is a {model.model_type} model.",
                    param="provider_shield_id",
                )
        return {"excluded_categories": [code for code in taxonomy.CATEGORIES if code in excluded]}

    async def _classify(self, shield: ServedShield, turns: list[Turn]) -> list[str]:
        """The checked categories the last turn violates (empty when it is safe)."""
        codes = taxonomy.checked_codes(shield.params.get("excluded_categories", self.excluded))
        body: dict[str, Any] = {
            "model": shield.provider_resource_id,
            "messages": [{"role": "user", "content": taxonomy.prompt(turns, codes)}],
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
            "store": False,
        }
        if self.config.output_grammar:
            body["grammar"] = taxonomy.grammar(codes)
        request = models.ChatCompletionRequest.model_validate(body)
        try:
            completion = await self.routers.inference.openai_chat_completion(request)
        except ResourceNotFoundError as exc:
            raise ServiceUnavailableError(
                f"Shield '{shield.identifier}' runs model '{shield.provider_resource_id}', which is not registered "
                "(register it, or import the default models with `pocketstack models import`).",
                code="shield_model_unavailable",
            ) from exc
        assert isinstance(completion, models.ChatCompletion)  # not streamed
        answer = completion.choices[0].message.content if completion.choices else None
        try:
            violated = taxonomy.parse(answer if isinstance(answer, str) else "")
        except UnreadableVerdict as exc:
            raise UpstreamError(
                f"Shield '{shield.identifier}': model '{shield.provider_resource_id}' did not answer as Llama Guard "
                f"does ({exc}); use a Llama Guard model, or keep output_grammar on.",
                code="unreadable_verdict",
            ) from exc
        return [code for code in violated if code in codes]

    @staticmethod
    def _verdict(violated: list[str]) -> Verdict:
        categories = taxonomy.openai_categories(violated)
        scores = {name: 1.0 if hit else 0.0 for name, hit in categories.items()}
        if not violated:
            return Verdict(flagged=False, categories=categories, category_scores=scores)
        return Verdict(
            flagged=True,
            categories=categories,
            category_scores=scores,
            violation_level="error",
            user_message=taxonomy.REFUSAL,
            metadata={
                "violation_type": ",".join(violated),
                "llama_guard_categories": [taxonomy.CATEGORIES[code] for code in violated],
            },
        )

    async def run_shield(self, shield: ServedShield, messages: list[ShieldMessage]) -> Verdict:
        turns = [Turn(_SPEAKERS[m.role], m.text) for m in messages if m.role in _SPEAKERS and m.text.strip()]
        if not turns:
            raise BadRequestError(
                "Llama Guard judges user, assistant or tool messages; none has text.", param="messages"
            )
        return self._verdict(await self._classify(shield, turns))

    async def run_moderation(self, shield: ServedShield, texts: list[str]) -> list[Verdict]:
        found = await asyncio.gather(*(self._classify(shield, [Turn("User", text)]) for text in texts))
        return [self._verdict(violated) for violated in found]
