from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from tests.factories import make_conversation, make_turn


@pytest.mark.django_db
def test_migrations_are_complete():
    # Fails when a model changed without a migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["status"] == "ok"
    assert body["broker"]["status"] in ("ok", "eager")


@pytest.mark.django_db
def test_model_prices_are_seeded():
    from apps.ingest.models import ModelPrice

    patterns = set(ModelPrice.objects.values_list("model_pattern", flat=True))
    assert {"gpt-4o*", "gpt-4o-mini*", "claude-sonnet-4*", "gemini-2.5-pro*"} <= patterns


@pytest.mark.django_db
class TestUniqueConstraints:
    def test_conversation_external_id_per_chatbot(self, chatbot, other_chatbot):
        make_conversation(chatbot, external_id="x")
        make_conversation(other_chatbot, external_id="x")
        with pytest.raises(IntegrityError), transaction.atomic():
            make_conversation(chatbot, external_id="x")

    def test_turn_external_id_per_conversation(self, chatbot):
        conversation = make_conversation(chatbot)
        make_turn(conversation, external_id="t")
        make_turn(conversation, external_id=None)
        make_turn(conversation, external_id=None)  # turns without an id are never duplicates
        make_turn(make_conversation(chatbot), external_id="t")
        with pytest.raises(IntegrityError), transaction.atomic():
            make_turn(conversation, external_id="t")

    def test_one_evaluation_per_turn_and_version(self, chatbot):
        turn = make_turn(chatbot=chatbot)
        Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version="v1")
        Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version="v2")
        with pytest.raises(IntegrityError), transaction.atomic():
            Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version="v1")

    def test_one_feedback_per_turn_and_end_user(self, chatbot):
        turn = make_turn(chatbot=chatbot)
        Feedback.objects.create(turn=turn, chatbot=chatbot, voter_key="a", rating="up")
        Feedback.objects.create(turn=turn, chatbot=chatbot, voter_key="b", rating="down")
        with pytest.raises(IntegrityError), transaction.atomic():
            Feedback.objects.create(turn=turn, chatbot=chatbot, voter_key="a", rating="down")


@pytest.mark.django_db
def test_metrics_expose_ingest_counts_and_stored_state(post_json, client, settings):
    before = _sample(client.get("/metrics").content.decode(), 'chatmon_ingest_items_total{kind="turn",result="stored"}')
    assert post_json("/api/v1/ingest/turns", {"conversation_id": "c", "user_message": "hi"}).status_code == 201
    text = client.get("/metrics").content.decode()
    assert _sample(text, 'chatmon_ingest_items_total{kind="turn",result="stored"}') == before + 1
    assert 'chatmon_ingest_request_seconds_bucket{endpoint="turns"' in text
    assert "chatmon_judge_pending_turns" in text
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0

