"""Engagement over the staff API (the dashboard panel fetches it): turns per conversation,
returning end users, drop-off after a fallback, an error or a 👎 — against hand-counted data."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.services import conversation_summary_recompute
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversations(chatbot, other_chatbot):
    now = timezone.now()
    # ana came back (a conversation 3 days ago); ben is new; cy only talked to the other chatbot before.
    make_conversation(chatbot, end_user_hash="ana", started_at=now - timedelta(days=3),
                      last_activity_at=now - timedelta(days=3), turn_count=1)
    make_conversation(other_chatbot, end_user_hash="cy", started_at=now - timedelta(days=3),
                      last_activity_at=now - timedelta(days=3), turn_count=1)
    shapes = [("ana", [{}, {"fallback_used": True}]),                 # 2 turns, ends on a fallback
              ("ana", [{"has_error": True}, {}, {}]),                  # 3 turns, the error was not last
              ("ben", [{}, {}, {}, {"thumbs_down": 1, "has_error": True}]),  # 4 turns, ends on 👎 + error
              ("cy", [{}]),                                            # 1 turn
              ("", [{}] * 7)]                                          # 7 turns, no end user
    for user, turns in shapes:
        last = now - timedelta(minutes=10)
        conversation = make_conversation(chatbot, end_user_hash=user, started_at=last - timedelta(minutes=len(turns)),
                                         last_activity_at=last, turn_count=len(turns))
        for index, fields in enumerate(turns):
            make_turn(conversation, timestamp=last - timedelta(minutes=len(turns) - 1 - index), sequence=index,
                      end_user_hash=user, **fields)
        # The factories keep no summary: derive it from the rows as the summary's owner does.
        conversation_summary_recompute(conversation_ids=[conversation.pk])


def test_engagement_matches_a_count_by_hand(admin_client, chatbot, conversations):
    response = admin_client.get("/api/v1/stats/engagement", {"hours": 24, "chatbot": chatbot.pk})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["conversations"] == 5
    assert data["turns_per_conversation"] == round(17 / 5, 2)
    assert {b["turns"]: b["conversations"] for b in data["turn_count_distribution"]} == {
        "1": 1, "2": 1, "3": 1, "4–5": 1, "6–10": 1, "11+": 0}
    assert (data["end_users"], data["returning_end_users"], data["returning_share"]) == (3, 1, 33.3)
    drop = data["drop_off"]
    assert drop["conversations"] == 5
    assert drop["after_fallback"] == {"conversations": 1, "share": 20.0}
    assert drop["after_error"] == {"conversations": 1, "share": 20.0}
    assert drop["after_thumbs_down"] == {"conversations": 1, "share": 20.0}


def test_engagement_rejects_unknown_parameters(admin_client, conversations):
    assert admin_client.get("/api/v1/stats/engagement", {"breakdown": "model"}).status_code == 400
    assert admin_client.get("/api/v1/stats/engagement", {"hours": 0}).status_code == 400
