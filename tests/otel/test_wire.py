"""OTLP/HTTP errors: every bad request is a 4xx with a google.rpc.Status body, never a 500."""

import gzip
import json
import zlib

import pytest
from google.rpc.status_pb2 import Status

from apps.conversations.models import LLMCall
from tests.factories import make_api_key
from tests.otel.conftest import chat_span, protobuf_body, recording_tracer


@pytest.fixture
def body(db):
    with recording_tracer() as (tracer, memory):
        chat_span(tracer)
    return protobuf_body(memory.get_finished_spans())


@pytest.mark.parametrize("key", ["", "cm_nope_nope", "not-a-key"])
def test_missing_or_unknown_key_is_401(post_otlp, body, key):
    response = post_otlp("/v1/traces", body, key=key)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "API key" in Status.FromString(response.content).message
    assert not LLMCall.objects.exists()


def test_revoked_key_is_401(client, chatbot, body):
    row, raw = make_api_key(chatbot)
    row.revoke()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf",
                           HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401 and not LLMCall.objects.exists()


def test_a_key_writes_only_to_its_own_chatbot(post_otlp, body, chatbot, other_chatbot, other_api_key):
    assert post_otlp("/v1/traces", body, key=other_api_key).status_code == 200
    assert LLMCall.objects.get().chatbot == other_chatbot


def test_401_answers_in_json_for_json_requests(post_otlp):
    response = post_otlp("/v1/traces", b"{}", content_type="application/json", key="")
    assert response.status_code == 401 and "API key" in json.loads(response.content)["message"]


@pytest.mark.parametrize(("payload", "content_type", "headers"), [
    (b"\xff\xff\xff\xff\xff", "application/x-protobuf", {}),
    (b"\x0a\xff\xff\xff\x0f", "application/x-protobuf", {}),  # a length running past the end
    (b"not json", "application/json", {}),
    (b"[1, 2]", "application/json", {}),
    (b'{"resourceSpans": "no"}', "application/json", {}),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz-not-hex"}]}]}]}', "application/json", {}),
    (b'{"resourceSpans": [' * 5000, "application/json", {}),
    (b"\xc3\x28", "application/json", {}),
    (b'{"resourceSpans": [{"resource": {"attributes": [{"key": "\\ud800", "value": {}}]}}]}', "application/json", {}),
    (gzip.compress(b""), "application/x-protobuf", {"HTTP_CONTENT_ENCODING": "gzip"}),  # empty
    (b"definitely not gzip", "application/x-protobuf", {"HTTP_CONTENT_ENCODING": "gzip"}),
    (gzip.compress(b"x" * 1000)[:-12], "application/x-protobuf", {"HTTP_CONTENT_ENCODING": "gzip"}),
])
def test_garbage_is_400(post_otlp, db, payload, content_type, headers):
    response = post_otlp("/v1/traces", payload, content_type=content_type, **headers)
    assert response.status_code == 400, response.content
    assert not LLMCall.objects.exists()


def test_garbage_logs_are_400(post_otlp, db):
    assert post_otlp("/v1/logs", b"\xff\xff\xff", content_type="application/x-protobuf").status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", "multipart/form-data; boundary=x"])
def test_other_content_types_are_415(post_otlp, body, content_type):
    assert post_otlp("/v1/traces", body, content_type=content_type).status_code == 415


def test_unknown_content_encoding_is_415(post_otlp, body):
    assert post_otlp("/v1/traces", body, HTTP_CONTENT_ENCODING="br").status_code == 415


def test_oversized_body_is_413(post_otlp, body, settings):
    settings.OTLP_MAX_REQUEST_BYTES = len(body) - 1
    response = post_otlp("/v1/traces", body)
    assert response.status_code == 413 and "limit" in Status.FromString(response.content).message
    settings.OTLP_MAX_REQUEST_BYTES = len(body)
    assert post_otlp("/v1/traces", body).status_code == 200


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_body_inflating_past_the_cap_is_413(post_otlp, db, settings, encoding):
    settings.OTLP_MAX_DECOMPRESSED_BYTES = 1_000_000
    bomb = b"\x00" * 50_000_000
    compressed = gzip.compress(bomb) if encoding == "gzip" else zlib.compress(bomb)
    assert len(compressed) < 100_000
    response = post_otlp("/v1/traces", compressed, HTTP_CONTENT_ENCODING=encoding)
    assert response.status_code == 413


def test_deflate_body_is_accepted(post_otlp, body):
    assert post_otlp("/v1/traces", zlib.compress(body), HTTP_CONTENT_ENCODING="deflate").status_code == 200
    assert LLMCall.objects.count() == 1


def test_get_is_405(client, db):
    assert client.get("/v1/traces").status_code == 405


def test_throttled_export_is_429_with_retry_after(post_otlp, body, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ingest": "1/min"}}
    assert post_otlp("/v1/traces", body).status_code == 200
    response = post_otlp("/v1/traces", body)
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
def test_metrics_are_refused_with_how_to_turn_them_off(post_otlp, db, content_type):
    response = post_otlp("/v1/metrics", b"\x0a\x00", content_type=content_type)
    assert response.status_code == 404
    message = (Status.FromString(response.content).message if content_type.endswith("protobuf")
               else json.loads(response.content)["message"])
    assert "TRACELOOP_METRICS_ENABLED=false" in message and "OTEL_METRICS_EXPORTER=none" in message
