"""Conversations (OpenAI's): metadata and an ordered list of items that responses read and extend."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from pocketstack._generated import models, protocols
from pocketstack.apis.responses.items import chat_messages, stored_items
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.security.access import CONVERSATION, Action
from pocketstack.storage.conversations import ConversationStore, StoredConversation
from pocketstack.wire.fields import given, plain


def _conversation(stored: StoredConversation) -> models.Conversation:
    return models.Conversation(id=stored.id, created_at=stored.created_at, metadata=stored.metadata)


def _item_list(items: list[dict[str, Any]], has_more: bool = False) -> models.ConversationItemList:
    data = [models.ConversationItem.model_validate(item) for item in items]
    return models.ConversationItemList(
        data=data, first_id=data[0].id if data else "", last_id=data[-1].id if data else "", has_more=has_more
    )


# Llama Stack's format (core/conversations/validation.py CONVERSATION_ID_PATTERN): `conv_` + 48 lowercase
# hex. Ids made before this build used 32 hex digits; they stay valid.
CONVERSATION_ID = re.compile(r"conv_(?:[0-9a-f]{48}|[0-9a-f]{32})")


def check_conversation_id(conversation_id: str, param: str = "conversation_id") -> None:
    """A malformed id is a 400 in Llama Stack's words (InvalidParameterError), before any lookup."""
    if not CONVERSATION_ID.fullmatch(conversation_id):
        raise BadRequestError(
            f"Invalid value for '{param}': {conversation_id}. "
            "Must match format 'conv_' followed by 48 lowercase hex characters.",
            code="invalid_conversation_id",
            param=param,
        )


class ConversationsApi(protocols.Conversations):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.access = stack.access

    @property
    def store(self) -> ConversationStore:
        return ConversationStore(self.stack.database)

    async def lookup(self, conversation_id: str, action: Action = Action.READ) -> StoredConversation:
        """The conversation, if the request may do `action` to it (its items follow it): one it may not
        see is as unknown as a missing one."""
        check_conversation_id(conversation_id)
        stored = await self.store.get(conversation_id)
        missing = ResourceNotFoundError("conversation", conversation_id)
        if stored is None:
            raise missing
        self.access.check(action, CONVERSATION, conversation_id, stored.owner, missing)
        return stored

    async def items(self, conversation_id: str, action: Action = Action.READ) -> list[dict[str, Any]]:
        """All of the conversation's items, in order (what a response reads before its own input; it
        asks for `update`, as it adds its own)."""
        await self.lookup(conversation_id, action)
        return await self.store.all_items(conversation_id)

    async def append(self, conversation_id: str, items: list[dict[str, Any]]) -> None:
        await self.store.add_items(conversation_id, items)

    async def create_conversation(self, request: models.CreateConversationRequest) -> models.Conversation:
        raw = plain(given(request.items)) or []
        items = stored_items(list(raw))
        chat_messages(items)  # refuses item kinds and parts this build cannot use, before anything is stored
        stored = StoredConversation(
            f"conv_{secrets.token_hex(24)}", int(time.time()), given(request.metadata) or {}, self.access.owner()
        )
        await self.store.create(stored, items)
        return _conversation(stored)

    async def get_conversation(self, request: models.GetConversationRequest) -> models.Conversation:
        return _conversation(await self.lookup(request.conversation_id))

    async def update_conversation(self, request: models.UpdateConversationRequest) -> models.Conversation:
        await self.lookup(request.conversation_id, Action.UPDATE)
        if not await self.store.update(request.conversation_id, request.metadata):
            raise ResourceNotFoundError("conversation", request.conversation_id)
        return _conversation(await self.lookup(request.conversation_id))

    async def delete_conversation(
        self, request: models.DeleteConversationRequest
    ) -> models.ConversationDeletedResource:
        await self.lookup(request.conversation_id, Action.DELETE)
        if not await self.store.delete(request.conversation_id):
            raise ResourceNotFoundError("conversation", request.conversation_id)
        return models.ConversationDeletedResource(id=request.conversation_id, deleted=True)

    async def list_conversation_items(
        self, request: models.ListConversationItemsRequest
    ) -> models.ConversationItemList:
        await self.lookup(request.conversation_id)
        descending = given(request.order, models.SortOrder.desc) == "desc"
        items, has_more = await self.store.page_items(
            request.conversation_id, after=given(request.after), limit=request.limit, descending=descending
        )
        return _item_list(items, has_more)

    async def add_conversation_items(self, request: models.AddConversationItemsRequest) -> models.ConversationItemList:
        await self.lookup(request.conversation_id, Action.UPDATE)
        items = stored_items(list(request.items))
        chat_messages(items)  # refuses what this build cannot use, as create does
        await self.append(request.conversation_id, items)
        return _item_list(items)

    async def get_conversation_item(self, request: models.GetConversationItemRequest) -> models.ConversationItem:
        await self.lookup(request.conversation_id)
        item = await self.store.item(request.conversation_id, request.item_id)
        if item is None:
            raise ResourceNotFoundError(
                "conversation item", request.item_id, parent=("conversation", request.conversation_id)
            )
        return models.ConversationItem.model_validate(item)

    async def delete_conversation_item(
        self, request: models.DeleteConversationItemRequest
    ) -> models.ConversationItemDeletedResource:
        """Answers Llama Stack's `{id: <item>, object: "conversation.item.deleted", deleted: true}`, not OpenAI's
        conversation (the spec's description says why)."""
        await self.lookup(request.conversation_id, Action.DELETE)
        if not await self.store.delete_item(request.conversation_id, request.item_id):
            raise ResourceNotFoundError(
                "conversation item", request.item_id, parent=("conversation", request.conversation_id)
            )
        return models.ConversationItemDeletedResource(id=request.item_id, deleted=True)


__all__ = ["ConversationsApi"]
