"""Safety: a shield run over messages (Llama Stack's run-shield) or over texts (OpenAI's moderations).

Both resolve a registered shield, hand its provider plain texts, and put the provider's verdicts
in the wire shape of the route: a `violation` (none when the text passed) or one moderation
result per input.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.apis.shields import ShieldsApi
from pocketstack.core.registry import Resource
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.providers.base import SafetyProvider, ServedShield, ShieldMessage, Verdict
from pocketstack.telemetry.safety import shield_run
from pocketstack.wire.fields import given, plain


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts (images and files are not text).
    An assistant message may leave content out (it made tool calls): no text."""
    content = given(plain(content))
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(text for part in content if isinstance(text := getattr(plain(part), "text", None), str))


def _violation(verdict: Verdict) -> models.SafetyViolation | None:
    if not verdict.flagged:
        return None
    return models.SafetyViolation(
        violation_level=models.ViolationLevel(verdict.violation_level),
        user_message=verdict.user_message,
        metadata=verdict.metadata,
    )


def _result(verdict: Verdict) -> models.ModerationResult:
    return models.ModerationResult(
        flagged=verdict.flagged,
        categories=verdict.categories,
        category_scores=verdict.category_scores,
        category_applied_input_types={name: ["text"] for name, hit in verdict.categories.items() if hit},
        user_message=verdict.user_message,
        metadata=verdict.metadata,
    )


class SafetyApi(protocols.Safety):
    def __init__(self, stack: Stack, shields: ShieldsApi) -> None:
        self.stack = stack
        self.shields = shields

    def _served(self, resource: Resource) -> tuple[ServedShield, SafetyProvider]:
        _, provider = self.shields.provider(resource.provider_id)
        served = ServedShield(resource.identifier, resource.provider_resource_id, resource.body.get("params", {}))
        return served, provider

    async def check(self, shield_id: str, messages: list[ShieldMessage]) -> Verdict:
        """Run one shield over messages (guardrails use this; run-shield is it over the wire)."""
        resource = await self.shields.lookup(shield_id)
        served, provider = self._served(resource)
        with shield_run(resource.identifier, resource.provider_id, len(messages)) as run:
            verdict = await provider.run_shield(served, messages)
            run.judged([verdict])
        return verdict

    async def run_shield(self, request: models.RunShieldRequest) -> models.RunShieldResponse:
        messages = []
        for message in request.messages:
            body = plain(message)
            messages.append(ShieldMessage(role=str(body.role), text=message_text(body.content)))
        if not any(m.text.strip() for m in messages):
            raise BadRequestError("The messages have no text to check.", param="messages")
        return models.RunShieldResponse(violation=_violation(await self.check(request.shield_id, messages)))

    async def run_moderation(self, request: models.ModerationRequest) -> models.ModerationObject:
        raw = plain(request.input)
        texts = [raw] if isinstance(raw, str) else [plain(t) for t in raw]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise BadRequestError("input is a non-empty string or a list of them.", param="input")
        resource = await self._moderation_shield(given(request.model))
        served, provider = self._served(resource)
        with shield_run(resource.identifier, resource.provider_id, len(texts)) as run:
            verdicts = await provider.run_moderation(served, cast(list[str], texts))
            run.judged(verdicts)
        return models.ModerationObject(
            id=f"modr-{uuid.uuid4().hex}",
            model=resource.identifier,
            results=[_result(verdict) for verdict in verdicts],
        )

    async def _moderation_shield(self, model: str | None) -> Resource:
        """`model` names a shield by id or by what it runs; without one, safety.default_shield_id."""
        if model is None:
            default = self.stack.config.safety.default_shield_id
            if default is None:
                raise BadRequestError(
                    "Name a shield in `model`, or set safety.default_shield_id in the run config.", param="model"
                )
            return await self.shields.lookup(default)
        found = await self.shields.table.find(model)
        if found is not None:
            return found
        matches = await self.shields.table.by_provider_resource_id(model)
        if not matches:
            raise ResourceNotFoundError("shield", model)
        return matches[0]
