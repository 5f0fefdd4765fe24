"""Two users with real API keys (`pocketstack keys create`) get isolated worlds, through the official
clients (issue 17: "a config with API keys gives two users isolated worlds"). The full matrix of
kinds and actions is test_access_matrix.py / test_access_threads.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest

from pocketstack import cli
from pocketstack._generated import models
from pocketstack.app import create_app
from tests.functional.conftest import access_config


async def _key(principal: str, team: str) -> str:
    """`pocketstack keys create`, as an operator runs it beside the server; the key it prints once."""
    printed = io.StringIO()

    def create() -> int:
        with contextlib.redirect_stdout(printed):
            return cli.main(["keys", "create", "--principal", principal, "--attribute", f"teams={team}"])

    assert await asyncio.to_thread(create) == 0
    return printed.getvalue().strip().splitlines()[-1]


async def test_two_api_key_users_see_only_their_own(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest], stored_embedding: str
) -> None:
    alice_key, bob_key = await _key("alice", "red"), await _key("bob", "blue")
    config = access_config(provider_config={"type": "api_keys", "cache_seconds": 0})
    server = await aiohttp_client(create_app(config))
    base = str(server.make_url("")).rstrip("/")
    alice = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=alice_key, max_retries=0)
    bob = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=bob_key, max_retries=0)
    bob_ls = llama_stack_client.AsyncLlamaStackClient(base_url=base, api_key=bob_key, max_retries=0)
    try:
        upload = await alice.files.create(file=("notes.txt", b"the tide turns at noon"), purpose="assistants")
        store = await alice.vector_stores.create(name="alice's", file_ids=[upload.id])
        response = await alice.responses.create(model="chat", input="capital?")
        conversation = await alice.conversations.create()

        assert upload.id not in [f.id for f in (await bob.files.list()).data]
        assert store.id not in [s.id for s in (await bob.vector_stores.list()).data]
        assert response.id not in [r.id for r in (await bob_ls.responses.list()).data]
        for read in (
            bob.files.retrieve(upload.id),
            bob.files.content(upload.id),
            bob.files.delete(upload.id),
            bob.responses.retrieve(response.id),
            bob.responses.delete(response.id),
            bob.conversations.retrieve(conversation.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await read
        with pytest.raises(openai.BadRequestError):  # an unknown store is a 400 on these routes (Llama Stack)
            await bob.vector_stores.search(store.id, query="tide")
        with pytest.raises(openai.NotFoundError):  # chaining onto another's response: not found
            await bob.responses.create(model="chat", input="and?", previous_response_id=response.id)

        assert (await alice.files.retrieve(upload.id)).id == upload.id  # the owner still has it all
        assert (await alice.vector_stores.search(store.id, query="tide")).data
        with pytest.raises(openai.AuthenticationError):
            await openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0).files.list()
    finally:
        await alice.close()
        await bob.close()
        await bob_ls.close()
