"""OTLP test helpers: the real OpenTelemetry SDK and OTLP/HTTP exporters aimed at live_server."""

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

RESOURCE = Resource.create({"service.name": "shop-bot"})


@contextmanager
def exporting_tracer(endpoint: str, api_key: str, *, compression: Compression | None = None) -> Iterator[Any]:
    """A tracer whose spans go through BatchSpanProcessor + OTLPSpanExporter (protobuf) to chatmon."""
    provider = TracerProvider(resource=RESOURCE)
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers={"Authorization": f"Bearer {api_key}"},
                                compression=compression or Compression.NoCompression, timeout=20)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        yield provider.get_tracer("chatmon-tests")
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()


@contextmanager
def recording_tracer() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    """A tracer whose finished spans stay in memory (to build request bodies from real SDK spans)."""
    provider = TracerProvider(resource=RESOURCE)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        yield provider.get_tracer("chatmon-tests"), memory
    finally:
        provider.shutdown()


def messages(*pairs: tuple[str, str]) -> str:
    """gen_ai.input.messages / gen_ai.output.messages JSON, current conventions."""
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in pairs])


def chat_span(tracer: Any, *, user: str = "Where is my order #50231?", answer: str = "It shipped yesterday.",
              conversation: str | None = "conv-otel-1", input_tokens: int = 21, output_tokens: int = 7,
              model: str = "gpt-4o-mini", extra: dict | None = None, error: bool = False) -> None:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.input.messages": messages(("system", "You are a shop assistant."), ("user", user)),
        "gen_ai.output.messages": messages(("assistant", answer)),
    }
    if conversation:
        attributes["gen_ai.conversation.id"] = conversation
    attributes.update(extra or {})
    with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes) as span:
        if error:
            span.set_attribute("error.type", "RateLimitError")
            span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))


def protobuf_body(spans: Any) -> bytes:
    return encode_spans(spans).SerializeToString()


def json_body(spans: Any) -> bytes:
    """OTLP JSON as a collector writes it: lowerCamelCase, hex ids, int64 as strings."""
    document = json_format.MessageToDict(encode_spans(spans))

    def to_hex(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
                        else to_hex(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [to_hex(v) for v in value]
        return value

    return json.dumps(to_hex(document)).encode()


def trace_response(content: bytes) -> ExportTraceServiceResponse:
    return ExportTraceServiceResponse.FromString(content)


@pytest.fixture
def gpt_4o_mini_price():
    """Transactional tests flush the seeded prices: put back the one these tests use."""
    from datetime import date
    from decimal import Decimal

    from apps.ingest.models import ModelPrice

    ModelPrice.objects.get_or_create(model_pattern="gpt-4o-mini", valid_from=date(2024, 7, 18), defaults={
        "provider": "openai", "input_per_million": Decimal("0.15"), "output_per_million": Decimal("0.60")})


@pytest.fixture
def post_otlp(client, api_key):
    """POST a body to an OTLP path with chatbot's key through Django's test client."""

    def post(path: str, body: bytes, *, content_type: str = "application/x-protobuf", key: str | None = None,
             **headers: str):
        extra = {"HTTP_AUTHORIZATION": f"Bearer {key or api_key}"} if key != "" else {}
        extra.update(headers)
        return client.post(path, data=body, content_type=content_type, **extra)

    return post
