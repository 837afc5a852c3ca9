"""Bodies sent with `Transfer-Encoding: chunked` and no Content-Length (what OpenTelemetry JS's
OTLP/HTTP exporter, and so the Langfuse JS SDK, always sends). Behind deploy/nginx.conf they arrive
with a length (tests/otel/test_langfuse_js.py runs the real SDK that way); here the two cases the
server decides: one that decodes the chunks (gunicorn sets `wsgi.input_terminated` and hands over
the decoded stream) and one that cannot (runserver), which gets a 411 saying what to change.
"""

import io

import pytest
from google.rpc.status_pb2 import Status

from apps.conversations.models import LLMCall
from tests.otel.conftest import chat_span, protobuf_body, recording_tracer


@pytest.fixture
def body(db):
    with recording_tracer() as (tracer, memory):
        chat_span(tracer, input_tokens=12, output_tokens=4)
    return protobuf_body(memory.get_finished_spans())


@pytest.mark.parametrize("path", ["/v1/traces", "/api/public/otel/v1/traces"])
def test_a_decoded_chunked_body_is_read_to_its_end(client, api_key, body, path):
    response = client.post(
        path,
        data=b"",
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_TYPE="application/x-protobuf",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.content
    call = LLMCall.objects.get()
    assert (call.input_tokens, call.output_tokens) == (12, 4)


def test_a_decoded_chunked_body_over_the_limit_is_413(client, api_key, body, settings):
    settings.OTLP_MAX_REQUEST_BYTES = len(body) - 1
    response = client.post(
        "/v1/traces",
        data=b"",
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_TYPE="application/x-protobuf",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and not LLMCall.objects.exists()


def test_a_chunked_body_the_server_cannot_decode_is_411(client, api_key, body):
    response = client.post(
        "/v1/traces",
        data=b"",
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_TYPE="application/x-protobuf",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(b"1a\r\n" + body[:26] + b"\r\n")},
    )
    assert response.status_code == 411
    assert "deploy/nginx.conf" in Status.FromString(response.content).message
    assert not LLMCall.objects.exists()
