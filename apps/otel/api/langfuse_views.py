"""Langfuse's public API as its SDKs call it, so LANGFUSE_BASE_URL can point at chatmon:

- POST /api/public/otel/v1/traces: OTLP/HTTP (langfuse 3.x and later), stored as /v1/traces is;
- POST /api/public/scores: a JSON array of scores (langfuse 5.x) or one score object;
- GET /api/public/projects: what `Langfuse().auth_check()` reads (the key's chatbot);
- POST /api/public/ingestion: langfuse 2.x's event batches (apps.otel.langfuse_ingestion), 207
  with per-event successes and errors.

Authentication is HTTP Basic `LANGFUSE_PUBLIC_KEY:LANGFUSE_SECRET_KEY` (apps.otel.langfuse:
`cm_<prefix>` and the whole chatmon API key) or a Bearer API key, throttled per key as every
bot request is. Answers and status codes are the ones the SDK reads: 401 for keys, 202/207 for
score batches, 503 + Retry-After (retried by the SDK) while a scored trace has not arrived.
"""

import base64
import binascii
import logging
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from apps.chatbots.api.authentication import api_key_authenticate
from apps.chatbots.api.throttling import ApiKeyRateThrottle
from apps.chatbots.models import ApiKey
from apps.core.json import json_loads_strict

from ..langfuse import langfuse_key_check, langfuse_scores_record
from ..langfuse_ingestion import MAX_EVENTS_PER_BATCH, langfuse_batch_ingest
from ..otlp import OtlpError, body_decompress
from ..services import traces_export
from .views import otlp_export

logger = logging.getLogger(__name__)

MAX_SCORES_PER_REQUEST = 1000
WAITING_RETRY_SECONDS = 2
_KEYS_HELP = ("Set LANGFUSE_PUBLIC_KEY to the key's visible part (cm_<prefix>) and LANGFUSE_SECRET_KEY "
              "to the whole chatmon API key.")


def _api_key(request: HttpRequest) -> ApiKey:
    """The API key of a Basic or Bearer Authorization header, or OtlpError 401 / 429."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    key = None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OtlpError(401, f"Malformed Basic credentials. {_KEYS_HELP}") from None
        public_key, separator, secret_key = decoded.partition(":")
        key = langfuse_key_check(public_key=public_key, secret_key=secret_key) if separator else None
    elif scheme.lower() == "bearer":
        key = api_key_authenticate(credentials.strip())
    else:
        raise OtlpError(401, f"Credentials are required. {_KEYS_HELP}")
    if key is None:
        raise OtlpError(401, f"Unknown or revoked API key, or a public key of another key. {_KEYS_HELP}")
    throttle = ApiKeyRateThrottle()
    if not throttle.allow_key(key.prefix):
        raise OtlpError(429, "Too many requests for this API key.", retry_after=int(throttle.wait()))
    return key


def _json_error(error: OtlpError) -> JsonResponse:
    answer = JsonResponse({"message": error.message, "error": error.message}, status=error.status)
    if error.retry_after is not None:
        answer["Retry-After"] = str(error.retry_after)
    return answer


@csrf_exempt
def otel_traces(request: HttpRequest) -> HttpResponse:
    """The OTLP receiver of /v1/traces behind Langfuse's path and credentials."""
    return otlp_export(request, message=ExportTraceServiceRequest(), store=traces_export,
                       response=ExportTraceServiceResponse(), rejected_field="rejected_spans",
                       authenticate=lambda r: _api_key(r).chatbot)


@csrf_exempt
def scores(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        answer = _json_error(OtlpError(405, "Use POST."))
        answer["Allow"] = "POST"
        return answer
    try:
        chatbot = _api_key(request).chatbot
        items, single = _scores_body(request)
        answers = langfuse_scores_record(chatbot=chatbot, items=items)
    except OtlpError as exc:
        return _json_error(exc)
    except OperationalError:
        logger.exception("otel: database unavailable while storing Langfuse scores")
        return _json_error(OtlpError(503, "The database is temporarily unavailable; retry shortly.", retry_after=5))
    waiting = [a for a in answers if a.status == "waiting"]
    rejected = [a for a in answers if a.status == "rejected"]
    if waiting:
        # The SDK retries a 503 with the whole batch: the stored scores are replays then.
        return _json_error(OtlpError(503, f"{len(waiting)} score(s) name a trace not stored yet "
                                          f"({waiting[0].message}); retry shortly.",
                                     retry_after=WAITING_RETRY_SECONDS))
    if single:
        if rejected:
            return JsonResponse({"message": rejected[0].message, "error": rejected[0].message}, status=400)
        return JsonResponse({"id": items[0].get("id") or ""}, status=200)
    if rejected:
        return JsonResponse({"accepted": len(answers) - len(rejected), "rejected": len(rejected),
                             "errors": [{"message": f"score {a.index}: {a.message}", "index": a.index}
                                        for a in rejected]}, status=207)
    return JsonResponse({"message": "Accepted"}, status=202)


def _scores_body(request: HttpRequest) -> tuple[list[Any], bool]:
    try:
        document = json_loads_strict(request.body)
    except ValueError as exc:
        raise OtlpError(400, f"Invalid JSON: {exc}.") from exc
    if isinstance(document, dict):
        return [document], True
    if not isinstance(document, list):
        raise OtlpError(400, "Expected a score object or a JSON array of scores.")
    if len(document) > MAX_SCORES_PER_REQUEST:
        raise OtlpError(413, f"At most {MAX_SCORES_PER_REQUEST} scores per request.")
    return document, False


@csrf_exempt
def projects(request: HttpRequest) -> HttpResponse:
    """`auth_check()` wants at least one project: the chatbot the key belongs to."""
    if request.method != "GET":
        answer = _json_error(OtlpError(405, "Use GET."))
        answer["Allow"] = "GET"
        return answer
    try:
        chatbot = _api_key(request).chatbot
    except OtlpError as exc:
        return _json_error(exc)
    return JsonResponse({"data": [{
        "id": chatbot.slug, "name": chatbot.name, "organization": {"id": "chatmon", "name": "chatmon"},
        "metadata": {},
    }]})


@csrf_exempt
def ingestion(request: HttpRequest) -> HttpResponse:
    """langfuse 2.x: `{"batch": [events]}` → 207 `{"successes": [{id, status}], "errors": [{id, status,
    message, error}]}`, as Langfuse answers it (the SDK logs the errors)."""
    if request.method != "POST":
        answer = _json_error(OtlpError(405, "Use POST."))
        answer["Allow"] = "POST"
        return answer
    try:
        chatbot = _api_key(request).chatbot
        batch = _ingestion_body(request)
        result = langfuse_batch_ingest(chatbot=chatbot, batch=batch)
    except OtlpError as exc:
        return _json_error(exc)
    except OperationalError:
        logger.exception("otel: database unavailable while storing a Langfuse ingestion batch")
        return _json_error(OtlpError(503, "The database is temporarily unavailable; retry shortly.", retry_after=5))
    return JsonResponse({
        "successes": [{"id": a.event_id, "status": a.status} for a in result.successes],
        "errors": [{"id": a.event_id, "status": a.status, "message": a.message, "error": a.message}
                   for a in result.errors],
    }, status=207)


def _ingestion_body(request: HttpRequest) -> list[Any]:
    limit = settings.OTLP_MAX_REQUEST_BYTES
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise OtlpError(413, f"Request body over the limit of {limit} bytes; lower the SDK's flush_at.")
    data = body_decompress(raw, (request.headers.get("Content-Encoding") or "").strip().lower())
    try:
        document = json_loads_strict(data)
    except ValueError as exc:
        raise OtlpError(400, f"Invalid JSON: {exc}.") from exc
    batch = document.get("batch") if isinstance(document, dict) else None
    if not isinstance(batch, list):
        raise OtlpError(400, 'Expected {"batch": [events]}.')
    if len(batch) > MAX_EVENTS_PER_BATCH:
        raise OtlpError(413, f"At most {MAX_EVENTS_PER_BATCH} events per batch.")
    return batch
