from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.conversations.models import Conversation, EndUserSession, LLMCall, Turn
from apps.privacy.hashing import end_user_hash
from apps.privacy.tasks import retention_purge
from tests.factories import make_chatbot, make_conversation, make_turn


def test_nightly_purge_deletes_only_expired_conversations_in_batches(chatbot, settings):
    settings.PRIVACY_RETENTION_BATCH = 2
    now = timezone.now()
    chatbot.retention_days = 30
    chatbot.save()
    keep_forever = make_chatbot(retention_days=0)
    old = [make_conversation(chatbot, last_activity_at=now - timedelta(days=31 + i)) for i in range(5)]
    for conversation in old:
        make_turn(conversation, timestamp=conversation.last_activity_at)
    fresh = make_conversation(chatbot, last_activity_at=now - timedelta(days=29))
    make_turn(fresh)
    ancient_forever = make_conversation(keep_forever, last_activity_at=now - timedelta(days=3650))
    LLMCall.objects.create(chatbot=chatbot, purpose="label", input_text="cluster label prompt",
                           timestamp=now - timedelta(days=40))

    result = retention_purge.delay().get()

    assert result["deleted"]["conversations"] == 5 and result["deleted"]["turns"] == 5
    assert result["deleted"]["llm_calls"] == 1
    assert set(Conversation.objects.values_list("pk", flat=True)) == {fresh.pk, ancient_forever.pk}
    assert Turn.objects.filter(conversation=fresh).count() == 1
    per_chatbot = AuditEvent.objects.get(action="privacy.retention_purged")
    assert per_chatbot.chatbot_id == chatbot.pk and per_chatbot.data["deleted"]["conversations"] == 5
    assert AuditEvent.objects.filter(action="privacy.retention_run").count() == 1
    # A second run finds nothing and still records the run.
    assert retention_purge.delay().get()["deleted"] == {}
    assert AuditEvent.objects.filter(action="privacy.retention_run").count() == 2


def test_retention_is_scheduled_nightly():
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "apps.privacy.tasks.retention_purge")
    assert entry["schedule"].hour == {3}


def test_retention_deletes_the_sessions_of_the_conversations_it_purges(chatbot, bot_client):
    """Turns sent without a conversation id open an EndUserSession (named by the end-user hash);
    when retention deletes its conversation the session goes too, and the fresh one stays."""
    chatbot.retention_days = 30
    chatbot.save()
    now = timezone.now()
    response = bot_client.post("/api/v1/ingest/turns", {"turns": [
        {"user_id": "old-user", "channel": "web", "user_message": "hello", "timestamp": (now - timedelta(days=40)).isoformat()},
        {"user_id": "new-user", "channel": "web", "user_message": "hi", "timestamp": (now - timedelta(days=1)).isoformat()},
    ]}, content_type="application/json")
    assert response.status_code == 207, response.content
    assert EndUserSession.objects.filter(chatbot=chatbot).count() == 2
    old_hash = end_user_hash(chatbot_id=chatbot.pk, user_id="old-user")

    result = retention_purge.delay().get()

    assert result["deleted"]["conversations"] == 1 and result["deleted"]["sessions"] == 1
    assert list(EndUserSession.objects.values_list("end_user_hash", flat=True)) == [
        end_user_hash(chatbot_id=chatbot.pk, user_id="new-user")]
    assert not EndUserSession.objects.filter(end_user_hash=old_hash).exists()
    assert not Conversation.objects.filter(end_user_hash=old_hash).exists()
    # The old user comes back: a new session, as for anyone.
    response = bot_client.post("/api/v1/ingest/turns", {"user_id": "old-user", "channel": "web", "user_message": "back"},
                               content_type="application/json")
    assert response.status_code == 201, response.content
    assert EndUserSession.objects.filter(end_user_hash=old_hash).count() == 1


def test_retention_deletes_closed_sessions_and_keeps_open_ones(chatbot, bot_client):
    """A session closed by the bot's `end` event names no conversation any more, only the
    end user's hash: retention deletes it, while a live session stays."""
    chatbot.retention_days = 30
    chatbot.save()
    for body in (
        {"user_id": "erin", "channel": "web", "user_message": "hi"},
        {"user_id": "erin", "channel": "web", "event": "end"},
        {"user_id": "frank", "channel": "web", "user_message": "hello"},
    ):
        response = bot_client.post("/api/v1/ingest/turns", body, content_type="application/json")
        assert response.status_code in (200, 201), response.content
    erin = end_user_hash(chatbot_id=chatbot.pk, user_id="erin")
    assert EndUserSession.objects.get(end_user_hash=erin).conversation_external_id == ""

    result = retention_purge.delay().get()

    assert result["deleted"]["sessions"] == 1 and result["deleted"].get("conversations", 0) == 0
    assert list(EndUserSession.objects.values_list("end_user_hash", flat=True)) == [
        end_user_hash(chatbot_id=chatbot.pk, user_id="frank")]
    assert Conversation.objects.count() == 2  # both conversations are recent: kept
