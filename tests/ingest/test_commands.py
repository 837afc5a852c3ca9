import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.alerts.models import AlertRule
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


def test_seed_demo_shows_the_whole_product(django_capture_on_commit_callbacks, client):
    """Clusters, a firing and a resolved alert delivered to a log channel, reviews in several
    states by the demo reviewers, and a working API key printed with a curl line."""
    from apps.alerts.models import AlertEvent, Delivery
    from apps.clustering.models import ClusterRun

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--conversations", "40", "--days", "7", "--api-key", "http://127.0.0.1:8000",
                     stdout=out)
    runs = ClusterRun.objects.all()
    assert runs.count() == 6 and runs.filter(status="done", cluster_count__gt=0).exists()
    # Two runs per chatbot (the week before last, then the last week) so drift has content.
    assert runs.values("chatbot").distinct().count() == 3
    assert not runs.filter(status__in=["pending", "running", "failed"]).exists()
    # The finished conversations are judged as a whole (offline backend), some flagged for it.
    from apps.evaluations.models import ConversationEvaluation

    judged = ConversationEvaluation.objects.filter(status="done", evaluator="heuristic")
    assert judged.exists() and not ConversationEvaluation.objects.exclude(status="done").exists()

    # Each chatbot has a "new failure theme" rule sending to the log channel, checked against its
    # newest run: an event exactly when that run has a new theme of at least 5 turns (the full
    # demo's second week has some; this small seed may have no earlier week to compare with).
    for chatbot_id in set(runs.values_list("chatbot_id", flat=True)):
        run = runs.filter(chatbot_id=chatbot_id, status="done").order_by("-created_at", "-id").first()
        rule = AlertRule.objects.get(chatbot_id=run.chatbot_id, metric="new_failure_theme", is_enabled=True)
        assert list(rule.channels.values_list("kind", flat=True)) == ["log"]
        new = run.clusters.filter(is_new=True, size__gte=5)
        events = AlertEvent.objects.filter(rule=rule)
        assert events.count() == (1 if new.exists() else 0)
        if new.exists():
            event = events.get()
            assert event.cluster_run_id == run.pk and all(c.label in event.message for c in new)

    events = AlertEvent.objects.filter(rule__name__startswith="Demo:").exclude(rule__metric="new_failure_theme")
    assert sorted(events.values_list("status", flat=True)) == ["firing", "resolved"]
    resolved = events.get(status="resolved")
    assert resolved.resolved_at > resolved.started_at
    deliveries = Delivery.objects.filter(event__in=events)
    assert set(deliveries.values_list("channel__kind", "status").distinct()) == {("log", "sent")}
    assert set(deliveries.values_list("kind", flat=True)) == {"firing", "resolved"}
    # The preset rules are on and send to the log channel too.
    presets = AlertRule.objects.filter(name__startswith="Preset:")
    assert presets.exists() and not presets.filter(is_enabled=False).exists()
    assert all(rule.channels.filter(kind="log").exists() for rule in presets)

    statuses = set(Conversation.objects.filter(is_flagged=True).values_list("review_status", flat=True))
    assert statuses == {"new", "in_review", "resolved", "false_positive"}
    human = Evaluation.objects.filter(evaluator="human")
    assert human.count() >= 3 and set(human.values_list("reviewer__username", flat=True)) == {"ana", "ben"}
    assert human.exclude(labels=[]).exists()
    assert Turn.objects.exclude(corrected_answer="").exists()
    assert any("manual" in reasons for reasons in Turn.objects.filter(is_flagged=True).values_list("flag_reasons", flat=True))
    assert Conversation.objects.filter(review_status="resolved").exclude(review_note="").exists()

    text = out.getvalue()
    raw = re.search(r"Bearer (cm_\w+_[\w-]+)'", text).group(1)
    assert "curl -X POST http://127.0.0.1:8000/api/v1/ingest/turns" in text
    key = ApiKey.objects.get(name="demo (make demo)", revoked_at=None)
    assert key.key_hash == ApiKey.hash_key(raw)
    sent = client.post("/api/v1/ingest/turns", '{"conversation_id": "c", "user_message": "hi"}',
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert sent.status_code == 201

    # A rerun on existing data adds nothing but a fresh key; the unused old one is revoked.
    rerun = StringIO()
    call_command("seed_demo", "--if-empty", "--api-key", "http://127.0.0.1:8000", stdout=rerun)
    assert "already present" in rerun.getvalue() and ClusterRun.objects.count() == 6
    assert ApiKey.objects.filter(name="demo (make demo)", revoked_at=None).count() == 2  # the used one stays
    call_command("seed_demo", "--if-empty", "--api-key", "http://127.0.0.1:8000", stdout=StringIO())
    assert ApiKey.objects.filter(name="demo (make demo)", revoked_at=None).count() == 2


def test_ensure_admin_creates_then_keeps_the_password_unless_given(django_user_model):
    call_command("ensure_admin", "--username", "admin", "--initial-password", "first-pass-123", stdout=StringIO())
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("first-pass-123")
    admin.set_password("changed-by-me-456")
    admin.save()
    # `make demo` again without ADMIN_PASSWORD: the initial password is not applied to an existing user.
    out = StringIO()
    call_command("ensure_admin", "--username", "admin", "--initial-password", "first-pass-123", stdout=out)
    admin.refresh_from_db()
    assert admin.check_password("changed-by-me-456") and "unchanged" in out.getvalue()
    # `make demo ADMIN_PASSWORD=…`: set.
    call_command("ensure_admin", "--username", "admin", "--password", "given-789", stdout=StringIO())
    admin.refresh_from_db()
    assert admin.check_password("given-789")
    with pytest.raises(CommandError, match="needs --password"):
        call_command("ensure_admin", "--username", "someone-new")


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
