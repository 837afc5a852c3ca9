"""Experiment targets: what answers a dataset item (a model + prompt, the bot's endpoint, uploads).

A target call is pure I/O (no database): it runs in the experiment's worker threads and returns
the answer and the model calls made, which the caller stores. Errors say whether another
attempt may help (`TargetError.permanent`), with the judge's transient rules: 408/409/429/5xx,
timeouts and connection errors are retried, anything else is not.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import openai
from django.conf import settings

from apps.core import outbound
from apps.core.encryption import UnreadableSecret
from apps.core.llm import TRANSIENT_STATUSES, ModelCall, model_call_timed

from .choices import TargetKind
from .models import ExperimentTarget

MAX_ANSWER_BYTES = 1_000_000
_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()


class TargetError(Exception):
    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        calls: list[ModelCall] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.calls = calls or []


@dataclass
class TargetAnswer:
    output: str
    calls: list[ModelCall] = field(default_factory=list)


@dataclass(frozen=True)
class ItemInput:
    """What a target sees of one item version."""

    input: str
    context: list[dict[str, str]]


def target_config_check(target: ExperimentTarget) -> None:
    """Raise ValueError with what is missing or refused (the admin form and the API show it)."""
    if target.kind == TargetKind.MODEL:
        if not target.model:
            raise ValueError("a model target needs a model")
        if target.base_url:
            outbound.destination_check(target.base_url)
    elif target.kind == TargetKind.HTTP:
        if not target.url or not target.answer_path:
            raise ValueError("an HTTP target needs a URL and a JSON path to the answer")
        outbound.destination_check(target.url)
        try:
            json.loads(target.body_template or "{}")
        except ValueError:
            raise ValueError("the body template must be JSON") from None
        if isinstance(target.secret_headers, UnreadableSecret):
            raise ValueError(f"secret headers: {UnreadableSecret.MESSAGE}")
        if not isinstance(target.secret_headers or {}, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in (target.secret_headers or {}).items()
        ):
            raise ValueError("secret headers must be a JSON object of strings")


def _client(base_url: str | None, *, pinned: bool) -> openai.OpenAI:
    """One client per configuration (it holds the connection pool).

    `pinned`: the base URL was typed by staff (a target's own), so every request is checked
    against the outbound policy and connects to the checked address, redirects not followed
    (apps.core.outbound.PinnedTransport); OPENAI_BASE_URL is the operator's and is used as is.
    """
    # Keyless OpenAI-compatible servers (vLLM, Ollama) take any key.
    key = (
        base_url,
        settings.OPENAI_API_KEY or "unused",
        float(settings.OPENAI_TIMEOUT_SECONDS),
        pinned,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = openai.OpenAI(
                base_url=base_url,
                api_key=key[1],
                timeout=settings.OPENAI_TIMEOUT_SECONDS,
                max_retries=0,
                http_client=(
                    outbound.pinned_http_client(timeout=settings.OPENAI_TIMEOUT_SECONDS)
                    if pinned
                    else None
                ),
            )
        return client


def _model_answer(target: ExperimentTarget, item: ItemInput) -> TargetAnswer:
    messages: list[dict[str, str]] = []
    if target.system_prompt:
        messages.append({"role": "system", "content": target.system_prompt})
    for earlier in item.context:
        messages += [
            {"role": "user", "content": earlier.get("user", "")},
            {"role": "assistant", "content": earlier.get("bot", "")},
        ]
    messages.append({"role": "user", "content": item.input})
    record = ModelCall(
        model=target.model,
        input_text=item.input,
        metadata={"step": "target", "target": target.name},
    )
    client = _client(target.base_url or settings.OPENAI_BASE_URL, pinned=bool(target.base_url))
    try:
        with model_call_timed(record):
            response = client.chat.completions.create(
                model=target.model,
                messages=messages,
                temperature=target.temperature,
            )
    except openai.APIStatusError as exc:
        transient = exc.status_code in TRANSIENT_STATUSES or exc.status_code >= 500
        raise TargetError(record.error, permanent=not transient, calls=[record]) from None
    except openai.APIConnectionError as exc:  # APITimeoutError included
        if isinstance(exc.__cause__, outbound.OutboundRefused):
            # The pinned transport's check: fix the URL, another attempt cannot help.
            # Nothing left chatmon, so no model call is recorded.
            raise TargetError(f"base URL {exc.__cause__}", permanent=True) from None
        raise TargetError(record.error, permanent=False, calls=[record]) from None
    except openai.APIResponseValidationError:
        raise TargetError(record.error, permanent=False, calls=[record]) from None
    choice = response.choices[0] if response.choices else None
    record.output_text = (choice.message.content if choice and choice.message else None) or ""
    record.usage_read(response)
    if response.model:
        record.model = response.model
    return TargetAnswer(output=record.output_text, calls=[record])


def _filled(template: Any, item: ItemInput) -> Any:
    """The body template with "{{input}}"/"{{context}}" placed as JSON values (never spliced
    into JSON text, so an input cannot break out of its string)."""
    if isinstance(template, dict):
        return {k: _filled(v, item) for k, v in template.items()}
    if isinstance(template, list):
        return [_filled(v, item) for v in template]
    if template == "{{context}}":
        return item.context
    if isinstance(template, str):
        return template.replace("{{input}}", item.input)
    return template


def answer_at(data: Any, path: str) -> Any:
    """The value at a dotted path (`data.answer`, `choices.0.message.content`)."""
    for part in [p for p in path.split(".") if p]:
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(part)
    return data


def _http_answer(target: ExperimentTarget, item: ItemInput) -> TargetAnswer:
    if isinstance(target.secret_headers, UnreadableSecret):
        raise TargetError(f"secret headers: {UnreadableSecret.MESSAGE}", permanent=True)
    body = _filled(json.loads(target.body_template or '{"message": "{{input}}"}'), item)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        **(target.secret_headers or {}),
    }
    try:
        status, raw = outbound.exchange(
            target.url,
            method=target.method,
            content=json.dumps(body).encode(),
            headers=headers,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
            max_body_bytes=MAX_ANSWER_BYTES,
        )
    except outbound.OutboundRefused as exc:
        raise TargetError(f"URL {exc}", permanent=True) from None
    except outbound.OutboundUnreachable as exc:
        raise TargetError(
            f"the endpoint did not answer{': ' + str(exc) if str(exc) else ''}", permanent=False
        ) from None
    if status != 200:
        transient = status in TRANSIENT_STATUSES or status >= 500
        raise TargetError(f"the endpoint answered HTTP {status}", permanent=not transient)
    try:
        answer = answer_at(json.loads(raw), target.answer_path)
    except (ValueError, KeyError):
        raise TargetError(
            f"no answer at {target.answer_path!r} in the endpoint's JSON reply", permanent=True
        ) from None
    return TargetAnswer(
        output=answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    )


def target_answer(
    *, target: ExperimentTarget, item: ItemInput, provided: str | None = None
) -> TargetAnswer:
    """Ask the target for its answer to one item (uploaded answers come as `provided`)."""
    if target.kind == TargetKind.UPLOADED:
        if provided is None:
            raise TargetError("no uploaded answer for this item", permanent=True)
        return TargetAnswer(output=provided)
    if target.kind == TargetKind.MODEL:
        return _model_answer(target, item)
    if target.kind == TargetKind.HTTP:
        return _http_answer(target, item)
    raise TargetError(f"unknown target kind {target.kind!r}", permanent=True)
