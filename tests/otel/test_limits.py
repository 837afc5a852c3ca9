"""What one OTLP request can make chatmon do (issue 15 §4, §7, §9): NUL from attributes or log
bodies never reaches PostgreSQL; log content waiting for its span is stored redacted; a gzip
bomb is refused before it is inflated in full; spans, log records, attributes and events per
request and per span are capped."""

import gzip
import json
import zlib

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.conversations.models import LLMCall, Turn
from apps.otel import otlp
from apps.otel.models import PendingSpanContent
from tests.otel.conftest import (
    RESOURCE,
    chat_span,
    json_body,
    protobuf_body,
    recording_tracer,
    trace_response,
)
from tests.otel.test_logs import emit_chat

pytestmark = pytest.mark.django_db


def _error_message(response) -> str:
    """The google.rpc.Status message, in the request's encoding."""
    if response["Content-Type"].startswith("application/json"):
        return json.loads(response.content)["message"]
    return Status.FromString(response.content).message


def _partial(response) -> dict:
    """The trace export's partial_success as a dict (camelCase keys, as OTLP JSON has them)."""
    if response["Content-Type"].startswith("application/json"):
        return json.loads(response.content).get("partialSuccess", {})
    partial = trace_response(response.content).partial_success
    return {"rejectedSpans": str(partial.rejected_spans), "errorMessage": partial.error_message}


def _spans(count: int = 1, **kwargs) -> list:
    with recording_tracer() as (tracer, memory):
        for i in range(count):
            chat_span(tracer, **{"conversation": f"conv-{i}", **kwargs})
    return list(memory.get_finished_spans())


def _logs(**kwargs) -> tuple[bytes, bytes]:
    tracer_provider, span_memory = TracerProvider(resource=RESOURCE), InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_memory))
    logger_provider, log_memory = LoggerProvider(resource=RESOURCE), InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_memory))
    emit_chat(tracer_provider.get_tracer("bot"), logger_provider.get_logger("bot"), **kwargs)
    spans = protobuf_body(span_memory.get_finished_spans())
    logs = encode_logs(log_memory.get_finished_logs()).SerializeToString()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return spans, logs


# --- §4: NUL in what a span or a log record carries -------------------------------------------

@pytest.mark.parametrize("attribute", ["session.id", "gen_ai.conversation.id"])
def test_nul_in_the_session_id_rejects_that_span_not_the_request(post_otlp, attribute):
    spans = _spans(conversation=None, extra={attribute: "sess\x00ion"}) + _spans()

    response = post_otlp("/v1/traces", protobuf_body(spans))

    assert response.status_code == 200, response.content
    partial = trace_response(response.content).partial_success
    assert partial.rejected_spans == 1 and "conversation_id" in partial.error_message
    assert LLMCall.objects.count() == 1 and Turn.objects.count() == 1


def test_nul_in_attributes_and_texts_is_stored_as_the_replacement_character(post_otlp):
    spans = _spans(user="Hi\x00there", answer="Hello\x00", extra={"gen_ai.response.id": "resp\x00"},
                   model="gpt\x00x")
    spans += _spans(extra={"gen_ai.response.id": "resp\x00"})

    response = post_otlp("/v1/traces", json_body(spans), content_type="application/json")

    assert response.status_code == 200, response.content
    # A model name is a label: refused with its span; free text and metadata keep a U+FFFD.
    assert _partial(response)["rejectedSpans"] == "1"
    turn = Turn.objects.get()
    assert "\x00" not in turn.user_message
    assert LLMCall.objects.get().metadata["otel"]["response_id"] == "resp\ufffd"


def test_nul_in_a_log_body_and_attributes_never_reaches_the_database(post_otlp):
    _, logs = _logs(question="Is it\x00 in stock?", answer="Yes\x00.")

    response = post_otlp("/v1/logs", logs)

    assert response.status_code == 200, response.content
    stored = json.dumps(PendingSpanContent.objects.get().events)
    assert "\\u0000" not in stored and "\\ufffd" in stored


# --- §7: pending content is redacted before it is stored --------------------------------------

def test_log_content_waiting_for_its_span_is_stored_redacted(post_otlp, chatbot):
    spans, logs = _logs(question="Card 4111 1111 1111 1111, mail jane.doe@example.com",
                        answer="Key sk-proj-abcdefghijklmnopqrstuvwx1234 noted.")

    assert post_otlp("/v1/logs", logs).status_code == 200

    stored = json.dumps(PendingSpanContent.objects.get().events)
    for secret in ("4111 1111", "jane.doe", "sk-proj-abc"):
        assert secret not in stored
    assert "[CARD]" in stored and "[EMAIL]" in stored and "[SECRET]" in stored
    # The span arrives: the turn is made of the redacted content and counts what was found.
    assert post_otlp("/v1/traces", spans).status_code == 200
    turn = Turn.objects.get()
    assert turn.user_message == "Card [CARD], mail [EMAIL]"
    assert turn.pii_found == {"CARD": 1, "EMAIL": 1, "SECRET": 1}


def test_log_content_is_kept_as_sent_when_the_chatbot_does_not_redact(post_otlp, chatbot):
    chatbot.pii_redaction_enabled = False
    chatbot.save()
    _, logs = _logs(question="mail jane.doe@example.com")

    assert post_otlp("/v1/logs", logs).status_code == 200

    assert "jane.doe@example.com" in json.dumps(PendingSpanContent.objects.get().events)


# --- §9: decompression ------------------------------------------------------------------------

def _attribute_bomb(attributes: int) -> bytes:
    """OTLP JSON of one span with `attributes` tiny attributes: compresses ~350×."""
    kv = ",".join('{"key":"k","value":{"intValue":"1"}}' for _ in range(attributes))
    return ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + "ab" * 16 + '","spanId":"' + "cd" * 8
            + '","name":"chat","attributes":[' + kv + "]}]}]}]}").encode()


def test_a_gzip_bomb_is_refused_at_the_ratio_cap_before_it_is_inflated(post_otlp, settings, monkeypatch):
    settings.OTLP_MAX_DECOMPRESSION_RATIO = 100
    bomb = gzip.compress(_attribute_bomb(400_000))  # ~14 MB of JSON
    assert len(bomb) < 100_000
    produced = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *args):
            self.inner = real(*args)

        def decompress(self, data, max_length=0):
            out = self.inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(otlp.zlib, "decompressobj", Counting)

    response = post_otlp("/v1/traces", bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 413
    assert "100×" in _error_message(response)
    cap = max(otlp.RATIO_FLOOR_BYTES, 100 * len(bomb))
    assert sum(produced) == cap + 1  # inflating stopped one byte past the cap
    assert not LLMCall.objects.exists()


def test_a_small_body_may_inflate_to_the_floor_whatever_its_ratio(post_otlp):
    body = json_body(_spans())
    padded = body[:-1] + b"," + b'"x":"' + b" " * 500_000 + b'"}'  # unknown field: ignored
    compressed = gzip.compress(padded)
    assert len(padded) / len(compressed) > 100

    response = post_otlp("/v1/traces", compressed, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 200, response.content
    assert LLMCall.objects.count() == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_an_ordinary_compressed_export_is_inflated_in_steps(post_otlp, encoding):
    body = protobuf_body(_spans(40))
    compressed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)

    response = post_otlp("/v1/traces", compressed, HTTP_CONTENT_ENCODING=encoding)

    assert response.status_code == 200 and LLMCall.objects.count() == 40


def test_a_truncated_gzip_body_is_400(post_otlp):
    compressed = gzip.compress(protobuf_body(_spans()))
    assert post_otlp("/v1/traces", compressed[:-12], HTTP_CONTENT_ENCODING="gzip").status_code == 400


def test_a_multi_member_gzip_body_is_inflated_in_full(post_otlp):
    """`cat a.gz b.gz` is one gzip body (RFC 1952 §2.2): every member is read, not the first."""
    body = protobuf_body(_spans(40))
    middle = len(body) // 2
    compressed = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
    assert gzip.decompress(compressed) == body

    response = post_otlp("/v1/traces", compressed, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 200, response.content
    assert LLMCall.objects.count() == 40


def _counting_inflater(monkeypatch) -> list[int]:
    produced: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *args):
            self.inner = real(*args)

        def decompress(self, data, max_length=0):
            out = self.inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(otlp.zlib, "decompressobj", Counting)
    return produced


def test_the_ratio_cap_holds_across_gzip_members(post_otlp, settings, monkeypatch):
    """A bomb cut into members each far under the cap is still stopped one byte past it."""
    settings.OTLP_MAX_DECOMPRESSION_RATIO = 100
    bomb = _attribute_bomb(400_000)
    piece = 700_000
    compressed = b"".join(gzip.compress(bomb[i:i + piece]) for i in range(0, len(bomb), piece))
    cap = max(otlp.RATIO_FLOOR_BYTES, 100 * len(compressed))
    assert piece < cap < len(bomb) and len(range(0, len(bomb), piece)) <= otlp.MAX_GZIP_MEMBERS
    produced = _counting_inflater(monkeypatch)

    response = post_otlp("/v1/traces", compressed, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 413
    assert sum(produced) == cap + 1
    assert not LLMCall.objects.exists()


@pytest.mark.parametrize(("encoding", "trailer"), [
    ("gzip", b"garbage after the member"),
    ("gzip", b"\x00" * 16),  # padding is not a member either
    ("deflate", b"\x78\x9c more"),  # the zlib format has one stream only
])
def test_bytes_after_the_compressed_data_that_are_not_a_member_are_400(post_otlp, encoding, trailer):
    body = protobuf_body(_spans())
    compressed = (gzip.compress(body) if encoding == "gzip" else zlib.compress(body)) + trailer

    response = post_otlp("/v1/traces", compressed, HTTP_CONTENT_ENCODING=encoding)

    assert response.status_code == 400
    assert f"{len(trailer)} bytes after the end" in _error_message(response)
    assert not LLMCall.objects.exists()


def test_too_many_gzip_members_is_400(post_otlp):
    body = protobuf_body(_spans())
    compressed = gzip.compress(body) + gzip.compress(b"") * otlp.MAX_GZIP_MEMBERS

    response = post_otlp("/v1/traces", compressed, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 400
    assert f"more than {otlp.MAX_GZIP_MEMBERS} members" in _error_message(response)


# --- §9: per request and per span -------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
def test_too_many_spans_in_one_export_is_413(post_otlp, settings, content_type):
    settings.OTLP_MAX_SPANS_PER_REQUEST = 5
    spans = _spans(6)
    body = protobuf_body(spans) if content_type == "application/x-protobuf" else json_body(spans)

    response = post_otlp("/v1/traces", body, content_type=content_type)

    assert response.status_code == 413
    assert "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in _error_message(response)
    assert not LLMCall.objects.exists()
    settings.OTLP_MAX_SPANS_PER_REQUEST = 6
    assert post_otlp("/v1/traces", body, content_type=content_type).status_code == 200


def test_too_many_log_records_in_one_export_is_413(post_otlp, settings):
    _, logs = _logs()
    settings.OTLP_MAX_LOG_RECORDS_PER_REQUEST = 2

    response = post_otlp("/v1/logs", logs)

    assert response.status_code == 413 and not PendingSpanContent.objects.exists()


def test_too_many_attributes_in_one_json_export_is_413_before_parsing(post_otlp, settings, monkeypatch):
    settings.OTLP_MAX_ATTRIBUTES_PER_REQUEST = 1000
    monkeypatch.setattr(otlp.json_format, "ParseDict", lambda *a, **k: pytest.fail("parsed"))

    response = post_otlp("/v1/traces", _attribute_bomb(1001), content_type="application/json")

    assert response.status_code == 413
    assert "OTLP_MAX_ATTRIBUTES_PER_REQUEST" in _error_message(response)


def test_escaped_attribute_keys_still_count_before_parsing(post_otlp, settings, monkeypatch):
    # "\u006bey" is "key" to a JSON parser but not to a byte count: the decoded count catches it.
    settings.OTLP_MAX_ATTRIBUTES_PER_REQUEST = 1000
    monkeypatch.setattr(otlp.json_format, "ParseDict", lambda *a, **k: pytest.fail("parsed"))
    escaped = _attribute_bomb(1001).replace(b'"key"', b'"\\u006bey"')
    assert b'"key"' not in escaped

    response = post_otlp("/v1/traces", escaped, content_type="application/json")

    assert response.status_code == 413
    assert "OTLP_MAX_ATTRIBUTES_PER_REQUEST" in _error_message(response)


def test_nested_attributes_count_towards_the_request_cap(post_otlp, settings):
    settings.OTLP_MAX_ATTRIBUTES_PER_REQUEST = 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(protobuf_body(_spans()))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    nested = span.attributes.add(key="deep").value.kvlist_value
    for i in range(300):
        nested.values.add(key=f"k{i}").value.int_value = i

    response = post_otlp("/v1/traces", request.SerializeToString())

    assert response.status_code == 413 and not LLMCall.objects.exists()


def test_a_span_over_the_attribute_or_event_cap_is_rejected_alone(post_otlp, settings):
    settings.OTLP_MAX_ATTRIBUTES_PER_SPAN = 20
    settings.OTLP_MAX_EVENTS_PER_SPAN = 3
    many_attributes = _spans(extra={f"x.{i}": i for i in range(30)})
    with recording_tracer() as (tracer, memory):
        chat_span(tracer, conversation="conv-events")
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}) as span:
            for i in range(4):
                span.add_event(f"e{i}")
    spans = many_attributes + list(memory.get_finished_spans()) + _spans()

    response = post_otlp("/v1/traces", protobuf_body(spans))

    assert response.status_code == 200
    partial = trace_response(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "at most 20 per span" in partial.error_message and "at most 3 per span" in partial.error_message
    assert LLMCall.objects.count() == 2


def test_a_log_record_over_the_attribute_cap_is_rejected_alone(post_otlp, settings):
    settings.OTLP_MAX_ATTRIBUTES_PER_SPAN = 2
    logger_provider, memory = LoggerProvider(resource=RESOURCE), InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger_provider.get_logger("bot").emit(LogRecord(event_name="gen_ai.user.message", body={"content": "x"},
                                                     attributes={f"a{i}": i for i in range(3)}))
    logs = encode_logs(memory.get_finished_logs()).SerializeToString()

    response = post_otlp("/v1/logs", logs)

    assert response.status_code == 200
    partial = ExportLogsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_log_records == 1 and "per record" in partial.error_message
