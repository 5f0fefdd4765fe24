"""Four small documents of different formats, vector stores made of them through `openai`, and PDFs."""

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


def pdf(lines: list[str]) -> bytes:
    """A one-page PDF with real text (Helvetica, one line per string), written by hand."""
    stream = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        " /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out
