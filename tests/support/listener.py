"""A loopback HTTP listener that counts every connection it accepts: proof that nothing reached it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    location: str | None = None  # a redirect's target


@dataclass
class Listener:
    host: str
    port: int
    answer: Answer
    connections: int = 0
    paths: list[str] = field(default_factory=list)

    def url(self, path: str = "/mcp") -> str:
        return f"http://{self.host}:{self.port}{path}"


class _Server(ThreadingHTTPServer):
    listener: Listener

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.listener.connections += 1  # counted on accept, before any byte is read
        return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        listener = self.server.listener
        listener.paths.append(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        answer = listener.answer
        self.send_response(answer.status)
        if answer.location is not None:
            self.send_header("Location", answer.location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def listening(answer: Answer | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[Listener]:
    server = _Server((host, port), _Handler)
    listener = Listener(host, server.server_address[1], answer or Answer())
    server.listener = listener
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
