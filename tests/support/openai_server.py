"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks `/v1/chat/completions` and `/v1/embeddings` over HTTP so the code under test uses the
real `openai` client. Responses are scripted per test:

    with OpenAIServer() as server:
        server.script_chat(ScriptedResponse(status=429, headers={"Retry-After": "0"}))
        server.script_chat(ScriptedResponse(content='{"accuracy": 9, ...}'))
        settings.OPENAI_BASE_URL = server.base_url

`OpenAIServer(reject_json_schema=True)` answers 400 to `response_format: json_schema`, like a
server without structured outputs.

Unscripted chat requests are answered by `server.chat_handler(request_json) -> str` (content);
embeddings are deterministic bag-of-words vectors (`server.embedding_dimensions` wide), so the
same text always gives the same vector and texts sharing words are close.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from tests.support.local_http import LocalHTTPServer


@dataclass
class ScriptedResponse:
    status: int = 200
    content: str | None = None  # chat message content (status 200)
    body: Any = None  # raw JSON body to send instead (any status)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts)
    raw: bytes | None = None  # raw bytes to send as the body (malformed responses)


def _default_chat(_request: dict[str, Any]) -> str:
    return json.dumps(
        {
            "accuracy": 8, "relevance": 8, "clarity": 8, "helpfulness": 8, "safety": 10,
            "hallucination": False, "reasoning": "The answer addresses the question.",
        }
    )


def bag_of_words_vector(text: str, dimensions: int) -> list[float]:
    vector = np.zeros(dimensions, dtype=np.float64)
    for word in text.lower().split():
        word = "".join(ch for ch in word if ch.isalnum())
        if not word:
            continue
        slot = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % dimensions
        vector[slot] += 1.0
    norm = np.linalg.norm(vector)
    if norm:
        vector /= norm
    return vector.tolist()


class OpenAIServer(LocalHTTPServer):
    def __init__(self, *, chat_handler: Callable[[dict[str, Any]], str] | None = None,
                 chat_delay: float = 0.0, embedding_dimensions: int = 64,
                 reject_json_schema: bool = False) -> None:
        self.chat_handler = chat_handler or _default_chat
        # Behave like servers without structured outputs (older vLLM/Ollama): a 400 for
        # response_format json_schema, before any scripted response is used.
        self.reject_json_schema = reject_json_schema
        self.chat_delay = chat_delay
        self.embedding_dimensions = embedding_dimensions
        self.chat_script: deque[ScriptedResponse] = deque()
        self.embedding_script: deque[ScriptedResponse] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "json"}
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # --- scripting ------------------------------------------------------------------------
    def script_chat(self, *responses: ScriptedResponse) -> None:
        self.chat_script.extend(responses)

    def script_embeddings(self, *responses: ScriptedResponse) -> None:
        self.embedding_script.extend(responses)

    def requests_to(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith(suffix)]

    # --- HTTP -----------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {}
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "json": payload})
                if self.path.endswith("/chat/completions") and server.reject_json_schema and (
                    (payload.get("response_format") or {}).get("type") == "json_schema"
                ):
                    self._send(400, {"error": {
                        "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                        "type": "invalid_request_error", "param": "response_format", "code": None,
                    }})
                elif self.path.endswith("/chat/completions"):
                    self._answer(server._next(server.chat_script), payload, server._chat_body)
                elif self.path.endswith("/embeddings"):
                    self._answer(server._next(server.embedding_script), payload, server._embedding_body)
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _answer(self, scripted: ScriptedResponse | None, payload: dict[str, Any],
                        default_body: Callable[[dict[str, Any], str | None], dict[str, Any]]) -> None:
                scripted = scripted or ScriptedResponse(delay=server.chat_delay if default_body == server._chat_body else 0.0)
                if scripted.delay:
                    time.sleep(scripted.delay)
                if scripted.raw is not None:
                    self._send_bytes(scripted.status, scripted.raw, scripted.headers)
                elif scripted.body is not None:
                    self._send(scripted.status, scripted.body, scripted.headers)
                elif scripted.status != 200:
                    self._send(scripted.status, {"error": {"message": f"scripted {scripted.status}", "type": "test"}}, scripted.headers)
                else:
                    self._send(200, default_body(payload, scripted.content), scripted.headers)

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self._send_bytes(status, json.dumps(body).encode(), headers)

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler

    def _next(self, script: deque[ScriptedResponse]) -> ScriptedResponse | None:
        with self._lock:
            return script.popleft() if script else None

    def _chat_body(self, payload: dict[str, Any], content: str | None) -> dict[str, Any]:
        if content is None:
            content = self.chat_handler(payload)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in payload.get("messages", []))
        completion_tokens = len(content.split())
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", "test-model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _embedding_body(self, payload: dict[str, Any], _content: str | None) -> dict[str, Any]:
        inputs = payload.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        data = [{"object": "embedding", "index": i, "embedding": bag_of_words_vector(str(text), self.embedding_dimensions)}
                for i, text in enumerate(inputs)]
        tokens = sum(len(str(t).split()) for t in inputs)
        return {"object": "list", "data": data, "model": payload.get("model", "test-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
