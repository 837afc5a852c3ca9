from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.chatbots.models import ApiKey
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from tests.conftest import require_shared_data

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_a_working_key_once(chatbot, client):
    out = StringIO()
    call_command("create_api_key", "shop", "--name", "prod", stdout=out, stderr=StringIO())
    raw = out.getvalue().strip()
    key = ApiKey.objects.get(chatbot=chatbot, name="prod")
    assert raw.startswith(f"cm_{key.prefix}_") and key.key_hash == ApiKey.hash_key(raw)
    response = client.post("/api/v1/ingest/turns", '{"conversation_id": "c", "user_message": "hi"}',
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 201


def test_create_api_key_for_unknown_chatbot():
    with pytest.raises(CommandError, match="No chatbot"):
        call_command("create_api_key", "nope")


def test_seed_demo_loads_believable_traffic(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--conversations", "20", stdout=StringIO())
    assert Conversation.objects.count() == 60
    turns = Turn.objects.all()
    assert turns.count() > 100
    assert turns.filter(has_error=True).exists() and turns.filter(fallback_used=True).exists()
    assert turns.filter(latency_ms__gt=3000).exists()
    assert Feedback.objects.filter(rating="down").exists() and Feedback.objects.filter(rating="up").exists()
    assert LLMCall.objects.filter(function_name="answer").count() == turns.count()
    assert Evaluation.objects.exists()
    # Idempotent with --if-empty.
    call_command("seed_demo", "--if-empty", stdout=StringIO())
    assert Conversation.objects.count() == 60


def test_replay_convai2_loads_real_dialogues_with_their_ratings():
    path = require_shared_data("convai2", "data_intermediate.json")
    out = StringIO()
    call_command("replay_convai2", str(path), "--limit", "25", stdout=out)
    assert "25 dialogues" in out.getvalue()
    assert Conversation.objects.count() == 25
    ups, downs = Feedback.objects.filter(rating="up").count(), Feedback.objects.filter(rating="down").count()
    assert ups + downs > 0
    assert sum(Turn.objects.values_list("thumbs_down", flat=True)) == downs
    # Replaying again stores nothing twice.
    turns = Turn.objects.count()
    call_command("replay_convai2", str(path), "--limit", "25", stdout=StringIO())
    assert Turn.objects.count() == turns and Feedback.objects.count() == ups + downs


def test_replay_convai2_rejects_a_missing_path(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("replay_convai2", str(tmp_path / "missing.json"))
