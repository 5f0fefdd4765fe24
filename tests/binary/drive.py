"""Runs the one-file binary in a clean environment and reports what it observed, as JSON.

    python tests/binary/drive.py BINARY WORKDIR

The server gets `env -i` with only PATH=/usr/bin:/bin (no venv, no Python of ours), a fresh
POCKETSTACK_HOME and an empty cache. test_binary.py runs this inside `unshare -rn` where it can,
so the binary has no network at all; the driver itself only talks to loopback.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai

CHAT_MODEL = "llama-cpp/SmolLM2-135M-Instruct"
EMBEDDING_MODEL = "llama-cpp/all-MiniLM-L6-v2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(work: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work / "user"),
        "POCKETSTACK_HOME": str(work / "home"),
        "POCKETSTACK_CACHE": str(work / "cache"),
    }


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _network_reachable() -> bool:
    """Whether any interface but loopback is there: looked at, never probed by sending traffic out."""
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    return any(name != "lo" for name in interfaces)


def main() -> None:
    binary, work = Path(sys.argv[1]), Path(sys.argv[2])
    (work / "user").mkdir(parents=True, exist_ok=True)
    env = _clean_env(work)
    seen: dict[str, Any] = {"network_reachable": _network_reachable()}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    version = cli("version")
    seen["version"] = {"returncode": version.returncode, "stdout": version.stdout.strip()}
    models = cli("models", "list")
    seen["models_list"] = {"returncode": models.returncode, "stdout": models.stdout}

    port = _free_port()
    log = (work / "server.log").open("w")
    server = subprocess.Popen([str(binary), "run", "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        while not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the binary did not become healthy:\n{(work / 'server.log').read_text()}")
            time.sleep(0.05)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        seen["models"] = sorted(m.id for m in client.models.list())
        chat = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12, temperature=0
        )
        seen["chat"] = {"content": chat.choices[0].message.content, "finish_reason": chat.choices[0].finish_reason}
        pieces = []
        chunks = 0
        for chunk in client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Count to five."}], max_tokens=12, stream=True
        ):
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        seen["stream"] = {"chunks": chunks, "text": "".join(pieces)}
        vectors = client.embeddings.create(model=EMBEDDING_MODEL, input=["A man is eating food.", "A cat sleeps."])
        seen["embeddings"] = [len(item.embedding) for item in vectors.data]

        uploaded = client.files.create(file=("notes.txt", b"offline notes"), purpose="assistants")
        seen["file_roundtrip"] = client.files.content(uploaded.id).content.decode()

        store = client.vector_stores.create(name="offline", extra_body={"embedding_model": EMBEDDING_MODEL})
        inserted = [{"content": "The lighthouse lamp guides ships."}, {"content": "Bread needs flour and water."}]
        client.post("/vector-io/insert", body={"vector_store_id": store.id, "chunks": inserted}, cast_to=object)
        found = client.vector_stores.search(store.id, query="what guides the ships?", max_num_results=1)
        seen["vector_search"] = found.data[0].content[0].text if found.data else None

        moderation = client.moderations.create(input="ship key AKIAIOSFODNN7EXAMPLE to bob@example.com")
        seen["moderation"] = {name for name, hit in moderation.results[0].categories.model_dump().items() if hit}
        seen["moderation"] = sorted(seen["moderation"])

        # Telemetry inside the binary: OpenTelemetry finds its context and propagators by entry points.
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi."}], max_tokens=4, temperature=0
        )
        seen["traceresponse"] = raw.headers.get("traceresponse", "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as scrape:
            seen["metrics_has_gen_ai"] = b"gen_ai_server_request_duration_seconds_count" in scrape.read()

        second = cli("run", "--port", str(port))
        seen["second_instance"] = {"returncode": second.returncode, "stderr": second.stderr}

        server.send_signal(signal.SIGTERM)
        seen["sigterm_returncode"] = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    seen["server_log"] = (work / "server.log").read_text()
    traces = cli("traces", "--limit", "20")
    seen["traces"] = {"returncode": traces.returncode, "stdout": traces.stdout, "stderr": traces.stderr}
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
