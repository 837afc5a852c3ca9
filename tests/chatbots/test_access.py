"""`chatbot_scoped`: the one way to limit rows to a user's chatbots, in its three forms."""

import pytest

from apps.chatbots.access import chatbot_ids_for_user, chatbot_scoped
from apps.chatbots.models import Chatbot
from apps.conversations.models import Conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversations(chatbot, other_chatbot):
    return {bot.slug: Conversation.objects.create(chatbot=bot, external_id=f"c-{bot.slug}") for bot in (chatbot, other_chatbot)}


def test_a_user_an_id_list_and_none_scope_alike(alice, bob, charlie, conversations):
    rows = Conversation.objects.all()
    for user, expected in ((alice, {"shop", "hr"}), (bob, {"shop"}), (charlie, set())):
        by_user = {c.chatbot.slug for c in chatbot_scoped(rows, user)}
        by_ids = {c.chatbot.slug for c in chatbot_scoped(rows, chatbot_ids_for_user(user))}
        assert by_user == by_ids == expected


def test_every_chatbot_is_no_filter_at_all(alice, chatbot):
    # No IN list and no subquery, so aggregates over every chatbot use the plain time indexes.
    assert "WHERE" not in str(chatbot_scoped(Conversation.objects.all(), None).query)
    assert "WHERE" not in str(chatbot_scoped(Conversation.objects.all(), alice).query)
    assert list(chatbot_scoped(Chatbot.objects.all(), [chatbot.pk], field="pk")) == [chatbot]
