"""langfuse 2.x (the v2 line, which cannot share a virtualenv with 5.x) against chatmon's
`POST /api/public/ingestion`: the SDK runs in a virtualenv of its own, built once under
.venv-langfuse2/ in the repository (gitignored, reused by later runs), as a subprocess aimed at
the live test server. Without PyPI the tests skip locally and fail under CI=true.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.conversations.models import LLMCall, Step, Turn
from apps.feedback.models import Feedback
from apps.otel.models import LangfuseObservation
from apps.privacy.hashing import end_user_hash
from apps.scores.models import Score
from tests.otel.test_langfuse import _public_key

REPOSITORY = Path(__file__).resolve().parents[2]
VENV = REPOSITORY / ".venv-langfuse2"
REQUIREMENT = "langfuse>=2.60,<3"
BOT = Path(__file__).parent / "clients" / "langfuse2_bot.py"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"langfuse 2.x virtualenv: {reason}")
    pytest.skip(f"langfuse 2.x virtualenv: {reason}")


@pytest.fixture(scope="session")
def langfuse2_python() -> Path:
    python = VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import langfuse, sys; sys.exit(0 if langfuse.version.__version__.startswith('2.') else 1)",
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                REQUIREMENT,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        _unavailable(
            f"could not install {REQUIREMENT}: {exc.stderr.decode(errors='replace')[-500:]}"
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"installing {REQUIREMENT} timed out")
    if subprocess.run(check, capture_output=True).returncode != 0:
        _unavailable(f"{REQUIREMENT} did not install a 2.x langfuse")
    return python


def _run_bot(python: Path, live_server, api_key: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANGFUSE_HOST": live_server.url,
        "LANGFUSE_PUBLIC_KEY": _public_key(api_key),
        "LANGFUSE_SECRET_KEY": api_key,
    }
    done = subprocess.run(
        [str(python), str(BOT)], env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return json.loads(done.stdout)


@pytest.mark.django_db(transaction=True)
def test_langfuse2_sdk_through_the_ingestion_endpoint(
    langfuse2_python, live_server, chatbot, api_key
):
    report = _run_bot(langfuse2_python, live_server, api_key)
    assert report == {"authenticated": True, "errors": []}

    turns = {
        t.conversation.external_id + "/" + t.external_id: t
        for t in Turn.objects.select_related("conversation")
    }
    assert set(turns) == {
        "v2-session/lf2-trace-1:lf2-trace-1",
        "v2-session/lf2-decorated-1:lf2-decorated-1",
    }
    turn = turns["v2-session/lf2-trace-1:lf2-trace-1"]
    # The question from the trace input (redacted), the answer from the output of a later batch.
    assert "jane.doe@example.com" not in turn.user_message
    assert (
        "Where is order 50231?" in turn.user_message
        and turn.bot_response == "Order 50231 has shipped."
    )
    assert turn.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-v2")
    assert (turn.metadata["otel"]["release"], turn.metadata["otel"]["version"]) == ("bot-2.0", "v7")
    assert turn.metadata["otel"]["metadata"] == {"plan": "pro"}
    call = LLMCall.objects.get(external_id="lf2-trace-1:lf2-gen-1")
    assert (call.turn_id, call.model, call.input_tokens, call.output_tokens) == (
        turn.pk,
        "gpt-4o-mini",
        31,
        6,
    )
    assert call.output_text == "Order 50231 has shipped."
    assert turn.total_tokens == 37 and turn.conversation.total_tokens == 37 + 13
    step = Step.objects.get(turn=turn)  # a v2 span without children: a tool step of the turn
    assert (step.name, step.kind, step.output_text) == (
        "order-lookup",
        "tool",
        '{"status": "shipped"}',
    )

    decorated = turns["v2-session/lf2-decorated-1:lf2-decorated-1"]
    assert (decorated.user_message, decorated.bot_response) == (
        "When do you close?",
        "We are open until 8 pm.",
    )
    assert (
        decorated.conversation_id == turn.conversation_id and decorated.conversation.turn_count == 2
    )
    assert LLMCall.objects.get(external_id="lf2-decorated-1:lf2-decorated-gen").input_tokens == 9

    feedback = Feedback.objects.get()
    assert (feedback.turn_id, feedback.rating, feedback.comment) == (turn.pk, "down", "Too slow")
    score = Score.objects.get(name="quality")
    assert (score.turn_id, score.value, score.source) == (turn.pk, 0.75, "langfuse")

    # The same bot again (a retry of every batch): nothing is stored twice.
    assert _run_bot(langfuse2_python, live_server, api_key) == {"authenticated": True, "errors": []}
    assert Turn.objects.count() == 2 and LLMCall.objects.count() == 2 and Step.objects.count() == 1
    assert Feedback.objects.count() == 1 and Score.objects.filter(name="quality").count() == 1
    assert LangfuseObservation.objects.filter(trace_id="lf2-trace-1").count() == 3


@pytest.mark.django_db
def test_ingestion_answers_per_event(client, chatbot, api_key):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    batch = [
        {
            "id": "e1",
            "type": "trace-create",
            "timestamp": "2026-01-05T10:00:00Z",
            "body": {
                "id": "t1",
                "timestamp": "2026-01-05T10:00:00Z",
                "sessionId": "s1",
                "input": "Hello?",
                "output": "Hi! How can I help?",
            },
        },
        {
            "id": "e2",
            "type": "generation-create",
            "body": {
                "id": "g1",
                "traceId": "t1",
                "name": "g",
                "model": "gpt-4o-mini",
                "usage": {"input": -4},
            },
        },  # ignored: estimated
        {"id": "e3", "type": "dataset-create", "body": {"id": "d"}},
        {"id": "e4", "type": "span-create", "body": {"name": "no ids"}},
        {"id": "e5", "type": "sdk-log", "body": {"log": "hello"}},
        {
            "id": "e6",
            "type": "score-create",
            "body": {"id": "sc", "traceId": "unknown", "name": "x", "value": 1},
        },
        {"type": "trace-create", "body": {"id": "t2"}},
        "not an event",
    ]
    answer = client.post(
        "/api/public/ingestion", data={"batch": batch}, content_type="application/json", **headers
    )
    assert answer.status_code == 207
    body = answer.json()
    assert sorted(s["id"] for s in body["successes"]) == ["e1", "e2", "e5"]
    errors = {e["id"]: e for e in body["errors"]}
    assert set(errors) == {"e3", "e4", "e6", ""} and errors["e6"]["status"] == 404
    assert errors["e3"]["status"] == 400 and "dataset-create" in errors["e3"]["message"]
    assert "traceId" in errors["e4"]["message"]
    turn = Turn.objects.get()
    assert (turn.user_message, turn.bot_response, turn.conversation.external_id) == (
        "Hello?",
        "Hi! How can I help?",
        "s1",
    )
    assert LLMCall.objects.get(turn=turn).model == "gpt-4o-mini"  # its negative usage ignored
    for bad in ("[", '{"batch": 3}', "[]"):
        assert (
            client.post(
                "/api/public/ingestion", data=bad, content_type="application/json", **headers
            ).status_code
            == 400
        )
    assert (
        client.post(
            "/api/public/ingestion", data={"batch": []}, content_type="application/json"
        ).status_code
        == 401
    )
    assert client.get("/api/public/ingestion", **headers).status_code == 405


@pytest.mark.django_db
def test_ingestion_never_answers_500_to_odd_bodies(client, chatbot, api_key):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    odd_values = [
        None,
        3,
        -1.5,
        True,
        "x" * 300,
        "a\u0000b",
        [],
        ["a", {"b": 1}],
        {"k": [1, 2]},
        "2026-13-45T99:00:00Z",
    ]
    fields = [
        "id",
        "traceId",
        "name",
        "sessionId",
        "userId",
        "input",
        "output",
        "metadata",
        "tags",
        "usage",
        "usageDetails",
        "costDetails",
        "model",
        "startTime",
        "endTime",
        "timestamp",
        "parentObservationId",
        "level",
        "statusMessage",
        "type",
        "release",
        "version",
        "value",
        "dataType",
        "observationId",
    ]
    kinds = ["trace-create", "span-create", "generation-update", "event-create", "score-create"]
    for index, field_name in enumerate(fields):
        for value_index, value in enumerate(odd_values):
            kind = kinds[(index + value_index) % len(kinds)]
            body = {
                "id": f"o-{index}-{value_index}",
                "traceId": "odd-trace",
                "name": "n",
                "value": 1,
            }
            body[field_name] = value
            answer = client.post(
                "/api/public/ingestion",
                data={"batch": [{"id": "e", "type": kind, "body": body}]},
                content_type="application/json",
                **headers,
            )
            assert answer.status_code == 207, (field_name, value, answer.content[:300])
            assert len(answer.json()["successes"]) + len(answer.json()["errors"]) == 1


@pytest.mark.django_db
def test_every_refused_event_gets_its_error(client, chatbot, api_key):
    """More refusals than the OTLP answer lists (5): each event still gets its own error."""
    batch = [
        {
            "id": "trace",
            "type": "trace-create",
            "body": {"id": "long", "sessionId": "x" * 300, "input": "Hi", "output": "Hello"},
        }
    ]
    batch += [
        {
            "id": f"g{i}",
            "type": "generation-create",
            "body": {
                "id": f"gen-{i}",
                "traceId": "long",
                "model": "gpt-4o-mini",
                "input": "a",
                "output": "b",
            },
        }
        for i in range(7)
    ]
    answer = client.post(
        "/api/public/ingestion",
        data={"batch": batch},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )
    assert answer.status_code == 207
    errors = answer.json()["errors"]
    assert sorted(e["id"] for e in errors) == sorted(["trace"] + [f"g{i}" for i in range(7)])
    assert all("conversation_id" in e["message"] for e in errors) and not answer.json()["successes"]
    assert not LLMCall.objects.exists() and not Turn.objects.exists()
