"""OTLP/HTTP receivers: POST /v1/traces and /v1/logs, authenticated with a chatbot's API key.

Plain Django views rather than DRF: the bodies and answers are protobuf as often as JSON, and
the status codes follow the OTLP spec (200 with partial_success, 400, 401, 413, 415, 429/503
with Retry-After, which exporters retry). Validation and storage live in apps.otel.services
(traces) and apps.otel.log_events (logs).
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from apps.chatbots.api.authentication import api_key_authenticate
from apps.chatbots.api.throttling import ApiKeyRateThrottle
from apps.chatbots.models import Chatbot

from ..log_events import logs_export
from ..otlp import (
    ExportResult,
    OtlpError,
    body_read,
    error_response,
    message_parse,
    message_response,
    response_encoding,
)
from ..services import traces_export

logger = logging.getLogger(__name__)


def _chatbot_authenticate(request: HttpRequest) -> Chatbot:
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise OtlpError(401, "An API key is required: set OTEL_EXPORTER_OTLP_HEADERS="
                             "'Authorization=Bearer%20<api key>'.")
    key = api_key_authenticate(parts[1])
    if key is None:
        raise OtlpError(401, "Unknown or revoked API key.")
    throttle = ApiKeyRateThrottle()
    if not throttle.allow_key(key.prefix):
        raise OtlpError(429, "Too many export requests for this API key.", retry_after=int(throttle.wait()))
    return key.chatbot


def otlp_export(request: HttpRequest, *, message: Any, store: Callable[..., ExportResult],
                response: Any, rejected_field: str,
                authenticate: Callable[[HttpRequest], Chatbot] = _chatbot_authenticate) -> HttpResponse:
    """One OTLP export: authenticate (Bearer key by default; Langfuse's path passes its own),
    read and parse the body, store it, answer with partial_success for what was rejected."""
    encoding = response_encoding(request)
    if request.method != "POST":
        answer = error_response(OtlpError(405, "Use POST."), encoding)
        answer["Allow"] = "POST"
        return answer
    try:
        chatbot = authenticate(request)
        body = body_read(request)
        parsed = message_parse(body, message)
        result = store(chatbot=chatbot, request=parsed)
    except OtlpError as exc:
        return error_response(exc, encoding)
    except OperationalError:
        logger.exception("otel: database unavailable during an OTLP export")
        return error_response(OtlpError(503, "The database is temporarily unavailable; retry shortly.",
                                        retry_after=5), encoding)
    if result.rejected or result.ignored:
        logger.info("otel export for chatbot %s: %d used, %d rejected, %d ignored (not GenAI)",
                    chatbot.pk, result.accepted, result.rejected, result.ignored)
    if result.rejected:
        partial = response.partial_success
        setattr(partial, rejected_field, result.rejected)
        partial.error_message = result.error_message
    return message_response(response, body.encoding)


@csrf_exempt
def traces(request: HttpRequest) -> HttpResponse:
    return otlp_export(request, message=ExportTraceServiceRequest(), store=traces_export,
                   response=ExportTraceServiceResponse(),
                   rejected_field="rejected_spans")


@csrf_exempt
def logs(request: HttpRequest) -> HttpResponse:
    return otlp_export(request, message=ExportLogsServiceRequest(), store=logs_export,
                   response=ExportLogsServiceResponse(),
                   rejected_field="rejected_log_records")


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    """SDKs that export metrics by default (traceloop-sdk) post them beside their traces: a 404
    saying how to turn them off (exporters do not retry a 404) rather than Django's HTML page."""
    return error_response(
        OtlpError(404, "chatmon stores OTLP traces and logs, not metrics: turn the metrics exporter "
                       "off (traceloop-sdk: TRACELOOP_METRICS_ENABLED=false; "
                       "OpenTelemetry: OTEL_METRICS_EXPORTER=none)."),
        response_encoding(request),
    )
