"""The `openai` client, one per process and configuration (it holds the HTTP connection pool)."""

import threading

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
