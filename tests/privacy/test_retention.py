from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.conversations.models import Conversation, LLMCall, Turn
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
