"""traceloop-sdk (OpenLLMetry) with the openai client against the local OpenAI-compatible server,
exporting to chatmon's OTLP endpoint with TRACELOOP_BASE_URL and TRACELOOP_HEADERS.

traceloop-sdk pins OpenTelemetry releases of its own (it would move the project's
opentelemetry-sdk and pulls some forty instrumentations), so it lives in a virtualenv of its own,
built once under .venv-traceloop/ in the repository (gitignored, reused by later runs) with the
project's pip, and the bot (tests/otel/clients/traceloop_bot.py) runs in it as a subprocess.
Without PyPI the test skips locally and fails under CI=true.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.conversations.models import Conversation, LLMCall, Step, Turn
from apps.feedback.models import Feedback
from apps.privacy.hashing import end_user_hash
from tests.otel.conftest import chat_span, protobuf_body, recording_tracer
from tests.support.openai_server import OpenAIServer

REPOSITORY = Path(__file__).resolve().parents[2]
VENV = REPOSITORY / ".venv-traceloop"
REQUIREMENTS = ["traceloop-sdk==0.62.4", "openai>=2,<3", "httpx>=0.27"]
BOT = Path(__file__).parent / "clients" / "traceloop_bot.py"
ANSWERS = {
    "Where is my order 50231?": "Order 50231 shipped yesterday.",
    "Do you ship to Norway?": "Yes, in about five days.",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"traceloop-sdk virtualenv: {reason}")
    pytest.skip(f"traceloop-sdk virtualenv: {reason}")


@pytest.fixture(scope="session")
def traceloop_python() -> Path:
    python = VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import importlib.metadata as m, sys; "
        "sys.exit(0 if m.version('traceloop-sdk') == '0.62.4' else 1)",
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", "--without-pip", str(VENV)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        # The project's pip installs into the new environment (`--python`): a fresh venv's
        # bundled pip may be too old to resolve traceloop-sdk's pins.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *REQUIREMENTS,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except subprocess.CalledProcessError as exc:
        _unavailable(
            f"could not install {REQUIREMENTS}: {exc.stderr.decode(errors='replace')[-800:]}"
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"installing {REQUIREMENTS} timed out")
    if subprocess.run(check, capture_output=True).returncode != 0:
        _unavailable("traceloop-sdk 0.62.4 did not install")
    return python


@pytest.mark.django_db(transaction=True)
def test_traceloop_sdk_with_the_openai_client(traceloop_python, live_server, chatbot, api_key):
    with OpenAIServer(
        chat_handler=lambda request: ANSWERS[request["messages"][-1]["content"]]
    ) as server:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TRACELOOP_BASE_URL": live_server.url,
            "TRACELOOP_HEADERS": f"Authorization=Bearer%20{api_key}",
            "TRACELOOP_TELEMETRY": "false",
            "TRACELOOP_METRICS_ENABLED": "false",
            "OPENAI_BASE_URL": server.base_url,
            "CHATMON_URL": live_server.url,
            "CHATMON_API_KEY": api_key,
        }
        done = subprocess.run(
            [str(traceloop_python), str(BOT)],
            env=env,
            capture_output=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert report["answers"] == list(ANSWERS.values()) and report["feedback_status"] == 201

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="tl-session")
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-tl")
    order, shipping = Turn.objects.filter(conversation=conversation).order_by("sequence")
    assert [order.external_id, shipping.external_id] == report["turn_ids"]
    assert (order.user_message, order.bot_response) == (
        "Where is my order 50231?",
        "Order 50231 shipped yesterday.",
    )
    assert (shipping.user_message, shipping.bot_response) == (
        "Do you ship to Norway?",
        "Yes, in about five days.",
    )
    assert order.model == "gpt-4o-mini"
    [call] = order.llm_calls.all()
    # The test server counts words as tokens: system 5 + user 5, answer 4.
    assert (call.model, call.input_tokens, call.output_tokens) == ("gpt-4o-mini", 10, 4)
    assert call.output_text == "Order 50231 shipped yesterday."
    assert LLMCall.objects.filter(chatbot=chatbot).count() == 2  # the workflows are turns only
    step = Step.objects.get(turn=order)
    assert (step.name, step.kind) == ("order-lookup", "tool")
    assert json.loads(step.output_text) == {"order": "50231", "status": "shipped"}

    order.refresh_from_db()
    assert (order.thumbs_down, order.is_flagged) == (1, True)
    assert Feedback.objects.get(turn=order).comment == "Wrong parcel"


@pytest.mark.xfail(
    strict=True,
    reason="not done: a workflow exported after its chat call (traceloop disable_batch=True, or a "
    "workflow outliving the batch delay) gives a second turn; see README 'Known limits'",
)
@pytest.mark.django_db
def test_a_workflow_exported_after_its_chat_call_is_one_turn(post_otlp, chatbot):
    workflow = {
        "traceloop.span.kind": "workflow",
        "traceloop.entity.name": "support-chat",
        "traceloop.entity.input": '{"args": ["Where is my order #50231?"], "kwargs": {}}',
        "traceloop.entity.output": '"It shipped yesterday."',
        "traceloop.association.properties.session_id": "split-session",
    }
    with (
        recording_tracer() as (tracer, memory),
        tracer.start_as_current_span("support-chat.workflow", attributes=workflow),
    ):
        chat_span(tracer, conversation=None)
    chat, outer = memory.get_finished_spans()  # the order SimpleSpanProcessor exports them in
    assert post_otlp("/v1/traces", protobuf_body([chat])).status_code == 200
    assert post_otlp("/v1/traces", protobuf_body([outer])).status_code == 200
    assert Turn.objects.count() == 1
