"""conversations_get_or_create_lock for one conversation (one INSERT … ON CONFLICT DO UPDATE
RETURNING on PostgreSQL): it creates, or returns the stored row untouched, and locks it."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from apps.conversations.models import Conversation
from apps.conversations.services import ConversationSeed, conversations_get_or_create_lock
from tests.factories import make_chatbot


@pytest.mark.django_db
def test_one_seed_creates_then_returns_the_stored_row_unchanged():
    chatbot = make_chatbot()
    at = timezone.now() - timedelta(hours=1)
    seed = ConversationSeed(external_id="c-1", started_at=at, last_activity_at=at, channel="web",
                            end_user_hash="h" * 64, metadata={"locale": "en-GB"})
    created = conversations_get_or_create_lock(chatbot=chatbot, seeds=[seed])["c-1"]
    assert created.pk and created.metadata == {"locale": "en-GB"} and created.channel == "web"
    Conversation.objects.filter(pk=created.pk).update(turn_count=7, total_tokens=99)
    later = ConversationSeed(external_id="c-1", started_at=timezone.now(), last_activity_at=timezone.now(),
                             channel="whatsapp", metadata={"other": 1})
    again = conversations_get_or_create_lock(chatbot=chatbot, seeds=[later])["c-1"]
    assert again.pk == created.pk
    assert (again.turn_count, again.total_tokens, again.channel, again.metadata) == (7, 99, "web", {"locale": "en-GB"})
    assert again.started_at == at and not again._state.adding
    assert Conversation.objects.filter(chatbot=chatbot).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_seed_holds_the_row_lock_until_commit():
    from tests.conftest import require_postgres

    require_postgres("row locks")
    chatbot = make_chatbot()
    at = timezone.now()
    seed = ConversationSeed(external_id="c-1", started_at=at, last_activity_at=at)
    conversations_get_or_create_lock(chatbot=chatbot, seeds=[seed])
    waited: list[float] = []

    def second_writer() -> None:
        try:
            started = time.monotonic()
            with transaction.atomic():
                conversations_get_or_create_lock(chatbot=chatbot, seeds=[seed])
            waited.append(time.monotonic() - started)
        finally:
            connections.close_all()

    with transaction.atomic():
        conversations_get_or_create_lock(chatbot=chatbot, seeds=[seed])
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.5)
        assert not waited  # blocked on our lock
    thread.join(10)
    assert waited and waited[0] >= 0.4
    connection.close()
