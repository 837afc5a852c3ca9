"""chatmon's own model calls: the `openai` client (one per process and configuration, it holds
the HTTP connection pool) and the in-memory record of one request (`ModelCall`).
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import openai
from django.conf import settings

# HTTP statuses worth another try besides 5xx (the same set the openai client retries by default).
TRANSIENT_STATUSES = frozenset({408, 409, 429})

_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()


def openai_client(*, max_retries: int, api_key_fallback: str = "") -> openai.OpenAI:
    """A client for OPENAI_BASE_URL / OPENAI_API_KEY.

    `max_retries` is the client's own retry policy: the judge retries through Celery (0), the
    embeddings and cluster titles let the client retry brief 429/5xx (2). `api_key_fallback`
    lets keyless OpenAI-compatible servers (vLLM, Ollama) work where a caller allows it.
    """
    api_key = settings.OPENAI_API_KEY or api_key_fallback
    key = (settings.OPENAI_BASE_URL, api_key, float(settings.OPENAI_TIMEOUT_SECONDS), max_retries)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = openai.OpenAI(
                base_url=settings.OPENAI_BASE_URL,
                api_key=api_key,
                timeout=settings.OPENAI_TIMEOUT_SECONDS,
                max_retries=max_retries,
            )
            _clients[key] = client
        return client


@dataclass
class ModelCall:
    """One request chatmon made to a model, successful or not: what is stored as an LLMCall.

    Filled in while the request runs (`model_call_timed`, `usage_read`), priced and stored by
    apps.conversations.llm_calls, so code that makes requests needs no database.
    """

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_estimated: bool = False
    duration_ms: int = 0
    input_text: str = ""
    output_text: str = ""
    success: bool = True
    error: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def usage_read(self, response: Any) -> bool:
        """Token counts from the response's `usage`; False when the server sent none."""
        usage = getattr(response, "usage", None)
        if usage is None:
            return False
        self.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        self.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return True


def model_error_text(exc: BaseException) -> str:
    """How a failed request reads in LLMCall.error: the HTTP status when the server answered."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def model_call_timed(call: ModelCall) -> Iterator[ModelCall]:
    """Time the request made in the block; an exception leaving it marks the call failed.

    The error text is `model_error_text(exc)` unless the block already set one; the exception
    is re-raised for the caller to translate (retry, permanent failure, fallback).
    """
    started = time.perf_counter()
    try:
        yield call
    except BaseException as exc:
        call.success = False
        call.error = call.error or model_error_text(exc)[:2000]
        raise
    finally:
        call.duration_ms = int((time.perf_counter() - started) * 1000)
