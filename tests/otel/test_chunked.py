"""Bodies sent with `Transfer-Encoding: chunked` and no Content-Length (what OpenTelemetry JS's
OTLP/HTTP exporter, and so the Langfuse JS SDK, always sends). Behind deploy/nginx.conf they arrive
with a length (tests/otel/test_langfuse_js.py runs the real SDK that way); here the two cases the
server decides: one that decodes the chunks (gunicorn sets `wsgi.input_terminated` and hands over
the decoded stream) and one that cannot (runserver), which gets a 411 saying what to change;
and a real gunicorn, without nginx, taking a chunked export.
"""

import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.rpc.status_pb2 import Status

from apps.conversations.models import LLMCall
from tests.otel.conftest import chat_span, protobuf_body, recording_tracer

ROOT = Path(__file__).resolve().parents[2]


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    lines = done.stdout.decode().strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_gunicorn_decodes_a_chunked_export(tmp_path, body):
    """Straight to a real gunicorn (no nginx in front): the chunks it decodes are read whole."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'chatmon.sqlite3'}",
            "REDIS_URL": "",
            "OPENAI_API_KEY": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    _manage(env, "migrate", "-v0")
    api_key = _manage(
        env,
        "shell",
        "-c",
        "from tests.factories import make_api_key, make_chatbot; "
        "print(make_api_key(make_chatbot())[1])",
    )
    port = _free_port()
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "chatmon.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn never listened"
                time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "POST",
            "/v1/traces",
            body=iter([body[:7], body[7:]]),
            encode_chunked=True,
            headers={
                "Content-Type": "application/x-protobuf",
                "Authorization": f"Bearer {api_key}",
            },
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(20)
    stored = _manage(
        env,
        "shell",
        "-c",
        "from apps.conversations.models import LLMCall; "
        "print([(c.input_tokens, c.output_tokens) for c in LLMCall.objects.all()])",
    )
    assert stored == "[(12, 4)]"
