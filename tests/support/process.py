"""`pocketstack run` as a real process on a free port, as a user starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POCKETSTACK_", "LLAMA_STACK_"))}
    return {**env, "POCKETSTACK_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


def pocketstack(*args: str) -> list[str]:
    return [sys.executable, "-m", "pocketstack", *args]


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=20)


def start(home: Path, args: Sequence[str] = (), port: int | None = None, env: dict[str, str] | None = None) -> Server:
    port = free_port() if port is None else port
    log = home.parent / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink:
        process = subprocess.Popen(
            pocketstack("run", *args, "--port", str(port)),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env or environment(home),
            text=True,
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/v1/health", timeout=1) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become healthy in {START_TIMEOUT_S} s:\n{server.output()}")
