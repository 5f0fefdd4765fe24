"""Drives a runtime-only install (what `make run` installs, never `[dev]`) and reports as JSON.

    RUNTIME_VENV/bin/python tests/process/runtime_drive.py WORKDIR

Runs with the runtime venv's own Python, so it uses the standard library alone: nothing of the
dev environment can hide a missing runtime dependency. It imports every module of `pocketstack`,
then starts `pocketstack run edge` on an empty POCKETSTACK_HOME (no `models import` first: the
first run must import the default embedding model by itself), and drives health, models, a chat,
an embedding and a clean SIGTERM.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHAT_MODEL = "llama-cpp/SmolLM2-135M-Instruct"
EMBEDDING_MODEL = "llama-cpp/all-MiniLM-L6-v2"
# Modules that exist for an optional extra may fail on its package, and only on its package
# (httpx and httpcore come with the mcp extra: security/outbound_httpx.py guards its client).
EXTRA_PACKAGES = {"mcp", "httpx", "httpcore", "asyncpg", "codeshield", "profanity_check"}


def import_everything() -> dict[str, str]:
    """Every module of the package imported; module -> error, for those that failed."""
    import pocketstack

    failures: dict[str, str] = {}
    for module in pkgutil.walk_packages(pocketstack.__path__, "pocketstack."):
        if module.name == "pocketstack.__main__":  # importing it runs the CLI
            continue
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in EXTRA_PACKAGES:
                failures[module.name] = f"ModuleNotFoundError: {exc}"
        except Exception:
            failures[module.name] = traceback.format_exc(limit=3)
    return failures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError):
        return 0, None


def _until(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return None


def serve_and_drive(work: Path) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "POCKETSTACK_HOME": str(work / "home")}
    command = [str(Path(sys.executable).with_name("pocketstack")), "run", "edge", "--port", str(port)]
    log = (work / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    seen: dict[str, Any] = {}
    try:
        seen["health"] = _until(lambda: _call(port, "/v1/health")[0] == 200, 60) is not None

        def both_models() -> list[str] | None:
            status, body = _call(port, "/v1/models")
            ids = [m["id"] for m in body["data"]] if status == 200 else []
            return ids if {CHAT_MODEL, EMBEDDING_MODEL} <= set(ids) else None

        seen["models"] = _until(both_models, 180) or _call(port, "/v1/models")[1]
        question = {"role": "user", "content": "Say hello."}
        status, chat = _call(
            port, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": [question], "max_tokens": 8}
        )
        seen["chat"] = {
            "status": status,
            "content": chat["choices"][0]["message"]["content"] if status == 200 else chat,
        }
        status, embedded = _call(port, "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": ["A man is eating food."]})
        seen["embedding"] = {
            "status": status,
            "dimensions": len(embedded["data"][0]["embedding"]) if status == 200 else 0,
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            seen["sigterm_returncode"] = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            seen["sigterm_returncode"] = None
        log.close()
    seen["server_log"] = (work / "server.log").read_text()
    return seen


def main() -> None:
    work = Path(sys.argv[1])
    seen: dict[str, Any] = {"import_failures": import_everything()}
    seen |= serve_and_drive(work)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
