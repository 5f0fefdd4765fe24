"""Four small documents of different formats, and vector stores made of them through `openai`."""

from __future__ import annotations

import io

import openai

FILES = {
    "lighthouse.md": b"# The lighthouse\n\nThe keeper climbs the tower every evening and lights the lamp for ships.\n",
    "bread.html": b"<html><body><script>var x=1;</script><p>Sourdough needs a starter, flour, water and salt.</p>"
    b"</body></html>",
    "comets.json": b'{"topic": "comets", "text": "A comet grows a glowing tail of ice and dust near the sun."}',
    "trains.csv": b"route,departs\nnight train to the coast,23:00\nmorning train to the hills,07:00\n",
}


async def upload(oai: openai.AsyncOpenAI, name: str, content: bytes) -> str:
    """Uploads a file for the assistants purpose; returns its id."""
    return (await oai.files.create(file=(name, io.BytesIO(content)), purpose="assistants")).id


async def store_of(oai: openai.AsyncOpenAI, model: str) -> str:
    """A vector store holding FILES, embedded with `model`, every file ingested; returns its id."""
    store = await oai.vector_stores.create(name="docs", extra_body={"embedding_model": model})
    for name, content in FILES.items():
        file_id = await upload(oai, name, content)
        await oai.vector_stores.files.create_and_poll(file_id=file_id, vector_store_id=store.id, poll_interval_ms=50)
    return store.id
