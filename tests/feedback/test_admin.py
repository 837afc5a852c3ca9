"""Feedback in the admin, as a logged-in superuser."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.conversations.models import Turn
from apps.feedback.models import Feedback
from apps.feedback.services import feedback_submit
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'


@pytest.fixture
def votes(turn):
    feedback_submit(turn_id=turn.pk, voter_key="a", rating="down", comment=XSS)
    feedback_submit(turn_id=turn.pk, voter_key="b", rating="up")
    return turn


def test_changelist_escapes_comments_and_links_turns(admin_client, votes):
    response = admin_client.get("/admin/feedback/feedback/")

    assert response.status_code == 200
    content = response.content.decode()
    assert XSS not in content
    assert "&lt;script&gt;" in content
    assert f"/admin/conversations/turn/{votes.pk}/change/" in content
    assert f"/admin/conversations/conversation/{votes.conversation_id}/change/" in content


def test_changelist_query_count_does_not_grow_with_rows(admin_client, chatbot):
    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get("/admin/feedback/feedback/").status_code == 200
        return len(queries)

    conversation = make_conversation(chatbot)
    feedback_submit(turn_id=make_turn(conversation).pk, voter_key="v", rating="up")
    few = count_queries()
    for i in range(10):
        feedback_submit(
            turn_id=make_turn(make_conversation(chatbot)).pk, voter_key=f"v{i}", rating="down"
        )
    assert count_queries() == few


def test_filter_by_conversation(admin_client, votes, chatbot):
    elsewhere = make_turn(make_conversation(chatbot))
    feedback_submit(turn_id=elsewhere.pk, voter_key="z", rating="up", comment="elsewhere")

    response = admin_client.get(f"/admin/feedback/feedback/?conversation={votes.conversation_id}")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == list(Feedback.objects.filter(turn=votes))


def test_delete_action_updates_the_counters(admin_client, votes):
    ids = list(Feedback.objects.values_list("pk", flat=True))

    response = admin_client.post(
        "/admin/feedback/feedback/",
        {"action": "delete_selected_feedback", "_selected_action": ids},
        follow=True,
    )

    assert response.status_code == 200
    assert not Feedback.objects.exists()
    turn = Turn.objects.get(pk=votes.pk)
    assert (turn.thumbs_up, turn.thumbs_down, turn.is_flagged) == (0, 0, False)


def test_delete_page_updates_the_counters(admin_client, votes):
    feedback = Feedback.objects.get(rating="down")

    response = admin_client.post(f"/admin/feedback/feedback/{feedback.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    turn = Turn.objects.get(pk=votes.pk)
    assert (turn.thumbs_up, turn.thumbs_down, turn.is_flagged) == (1, 0, False)


def test_votes_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/feedback/feedback/add/").status_code == 403


def test_feedback_inline_on_the_turn_page(admin_client, votes):
    response = admin_client.get(f"/admin/conversations/turn/{votes.pk}/change/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "&lt;script&gt;" in content and XSS not in content
    assert "Thumbs down" in content and "Thumbs up" in content
    # Read-only: no inline form fields for feedback rows.
    assert 'name="feedback-0-rating"' not in content


def test_reviewer_sees_the_feedback_of_their_chatbots_turns_only(bob_client, votes, other_chatbot):
    elsewhere = make_turn(make_conversation(other_chatbot))
    feedback_submit(turn_id=elsewhere.pk, voter_key="z", rating="down", comment="elsewhere")

    response = bob_client.get(f"/admin/conversations/turn/{votes.pk}/change/")
    assert response.status_code == 200
    assert "&lt;script&gt;" in response.content.decode()
    assert bob_client.get(f"/admin/conversations/turn/{elsewhere.pk}/change/").status_code == 404


def test_rating_filter_on_conversations(admin_client, chatbot):
    down = make_conversation(chatbot, external_id="has-down")
    up = make_conversation(chatbot, external_id="only-up")
    make_conversation(chatbot, external_id="unrated")
    feedback_submit(turn_id=make_turn(down).pk, voter_key="a", rating="down")
    feedback_submit(turn_id=make_turn(down).pk, voter_key="a", rating="up")
    feedback_submit(turn_id=make_turn(up).pk, voter_key="a", rating="up")

    def ids(rating):
        response = admin_client.get("/admin/conversations/conversation/", {"rating": rating})
        assert response.status_code == 200
        return sorted(c.external_id for c in response.context["cl"].result_list)

    assert ids("down") == ["has-down"]
    assert ids("up") == ["has-down", "only-up"]
    assert ids("only_up") == ["only-up"]
    assert ids("rated") == ["has-down", "only-up"]
    assert ids("unrated") == ["unrated"]
