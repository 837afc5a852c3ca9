"""A real local HTTP receiver for outgoing webhooks (alerts, Slack, Discord, generic).

    with WebhookReceiver() as receiver:
        receiver.script(ScriptedReply(status=500), ScriptedReply(status=200))
        channel.config = {"url": receiver.url("/hook"), ...}
        ...
        request = receiver.requests[0]      # ReceivedRequest(method, path, headers, body)
        request.json()

Unscripted requests get `default_status` (200) with an empty JSON object. A reply with a delay
longer than the client's timeout exercises timeouts; the receiver tolerates the client hanging up.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import LocalHTTPServer


@dataclass
class ScriptedReply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # header names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(LocalHTTPServer):
    def __init__(self, *, default_status: int = 200) -> None:
        self.default_status = default_status
        self.requests: list[ReceivedRequest] = []
        self._script: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        super().__init__(self._handler_class())

    @property
    def base_url(self) -> str:
        return self.origin

    def url(self, path: str = "/hook") -> str:
        return f"{self.base_url}{path}"

    def script(self, *replies: ScriptedReply) -> None:
        with self._lock:
            self._script.extend(replies)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until `count` requests arrived (for senders running in another thread/process)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")
                self._arrived.wait(remaining)
            return list(self.requests)

    def _next_reply(self) -> ScriptedReply:
        with self._lock:
            return self._script.popleft() if self._script else ScriptedReply(status=self.default_status)

    def _record(self, request: ReceivedRequest) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._record(ReceivedRequest(
                    method=self.command, path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                ))
                reply = receiver._next_reply()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if "content-type" not in {name.lower() for name in reply.headers}:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to answer

            do_POST = do_PUT = do_GET = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        return Handler
