"""The review queue in the admin: flagged only, filters, search, ordering, counts per status."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db
QUEUE = "/admin/review/flaggedconversation/"


def ids(response) -> list[str]:
    return [c.external_id for c in response.context["cl"].result_list]


@pytest.fixture
def queue(chatbot, other_chatbot, django_user_model):
    """Five flagged conversations (and one not flagged) with distinct risk, judge, votes, status."""
    now = timezone.now()
    reviewer = django_user_model.objects.create_user("dora", is_staff=True)
    rows = {
        "q-new-critical": dict(max_risk_score=95, min_judge_score=6.0, flag_reasons=["risk"], thumbs_down=1,
                               last_activity_at=now - timedelta(hours=5)),
        "q-new-medium": dict(max_risk_score=30, min_judge_score=2.5, flag_reasons=["judge"],
                             last_activity_at=now - timedelta(hours=1)),
        "q-inreview-high": dict(max_risk_score=60, min_judge_score=None, flag_reasons=["risk", "thumbs_down"],
                                review_status="in_review", thumbs_up=2, last_activity_at=now - timedelta(hours=3)),
        "q-resolved-low": dict(max_risk_score=10, min_judge_score=8.0, flag_reasons=["thumbs_down"],
                               review_status="resolved", last_activity_at=now - timedelta(days=40)),
        "q-fp-high": dict(max_risk_score=70, min_judge_score=4.0, flag_reasons=["risk"],
                          review_status="false_positive", assignee=reviewer, last_activity_at=now - timedelta(hours=2)),
    }
    made = {key: make_conversation(chatbot, external_id=key, is_flagged=True, **fields) for key, fields in rows.items()}
    make_conversation(chatbot, external_id="not-flagged", max_risk_score=99)
    make_conversation(other_chatbot, external_id="q-other-bot", is_flagged=True, max_risk_score=99, flag_reasons=["risk"])
    make_turn(made["q-new-medium"], user_message="The parcel never arrived", bot_response="Sorry about that")
    return made


def test_queue_opens_on_open_items_newest_first_with_status_counts(admin_client, queue):
    response = admin_client.get(QUEUE)
    assert response.status_code == 200
    # Open (new + in review) by default; "All flagged" is a tab of its own.
    assert ids(response) == ["q-other-bot", "q-new-medium", "q-inreview-high", "q-new-critical"]
    tabs = {tab["label"]: tab["count"] for tab in response.context["status_tabs"]}
    assert tabs == {"Open": 4, "New": 3, "In review": 1, "Resolved": 1, "False positive": 1, "All flagged": 6}
    assert [tab["label"] for tab in response.context["status_tabs"] if tab["active"]] == ["Open"]
    html = response.content.decode()
    assert 'id="review-status-tabs"' in html
    assert "<title>Review queue" in html and "<h1>Review queue</h1>" in html
    everything = admin_client.get(QUEUE, {"status": "all"})
    assert ids(everything) == [
        "q-other-bot", "q-new-medium", "q-fp-high", "q-inreview-high", "q-new-critical", "q-resolved-low",
    ]


def test_queue_rows_say_why_they_are_here(admin_client, chatbot, queue):
    from apps.evaluations.models import Evaluation
    from apps.feedback.models import Feedback

    conversation = queue["q-new-critical"]
    make_turn(conversation, sequence=1, risk_score=20, is_flagged=True, flag_reasons=["thumbs_down"],
              user_message="hello", bot_response="hi")
    worst = make_turn(conversation, sequence=2, risk_score=95, is_flagged=True, flag_reasons=["risk"],
                      risk_reasons=[{"rule": "Refund promise", "points": 95}],
                      user_message="Can I get my money back after a year?", bot_response="Yes, always, no questions.")
    Evaluation.objects.create(turn=worst, chatbot=chatbot, evaluator="llm_judge", evaluator_version="judge-v1:x",
                              status="done", overall=2.0, reasoning="Invents a refund policy.\nMore detail.")
    Feedback.objects.create(turn=worst, chatbot=chatbot, voter_key="v", rating="down", comment="That is not true")
    chatbot.risk_threshold = 70
    chatbot.save()
    html = admin_client.get(QUEUE).content.decode()
    assert "<b>Rules:</b> Refund promise" in html
    assert "<b>Judge:</b> Invents a refund policy." in html and "More detail" not in html
    assert "👎 “That is not true”" in html
    assert "Can I get my money back after a year?" in html and "Yes, always, no questions." in html
    assert "95 · critical" in html and "at or above this chatbot&#x27;s threshold 70" in html
    assert "30 · medium" in html and "below this chatbot&#x27;s threshold 70" in html


def test_destructive_actions_are_not_first(admin_client, queue):
    response = admin_client.get(QUEUE)
    names = [name for name, _ in response.context["action_form"].fields["action"].choices if name]
    assert names[0] == "assign_to_me"
    assert names.index("delete_selected") == len(names) - 1


def test_status_counts_follow_the_chatbot_filter(admin_client, bob, queue, chatbot, other_chatbot):
    from django.test import Client

    bob_client = Client()
    bob_client.force_login(bob)

    def tabs(client, chatbot_id):
        response = client.get(QUEUE, {"chatbot": chatbot_id})
        return {tab["label"]: tab["count"] for tab in response.context["status_tabs"]}

    assert tabs(admin_client, other_chatbot.pk) == {"Open": 1, "All flagged": 1, "New": 1, "In review": 0,
                                                     "Resolved": 0, "False positive": 0}
    assert tabs(admin_client, chatbot.pk)["All flagged"] == 5
    # A reviewer of `chatbot` asking for another bot's counts gets their own, never the other's.
    assert tabs(bob_client, other_chatbot.pk)["All flagged"] == 5


def test_queue_riskiest_first(admin_client, queue):
    riskiest = admin_client.get(QUEUE).context["riskiest_url"]
    response = admin_client.get(QUEUE + riskiest + "&status=all")
    assert response.context["riskiest_first"] is True
    listed = ids(response)
    scores = [Conversation.objects.get(external_id=x).max_risk_score for x in listed]
    assert scores == sorted(scores, reverse=True)
    assert listed[-1] == "q-resolved-low"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"risk": "critical"}, {"q-new-critical", "q-other-bot"}),
        ({"risk": "high"}, {"q-inreview-high", "q-fp-high"}),
        ({"rating": "down"}, {"q-new-critical"}),
        ({"rating": "up"}, {"q-inreview-high"}),
        ({"judge": "lt3"}, {"q-new-medium"}),
        ({"judge": "3to5"}, {"q-fp-high"}),
        ({"judge": "none"}, {"q-inreview-high", "q-other-bot"}),
        ({"status": "in_review"}, {"q-inreview-high"}),
        ({"assignee": "none"}, {"q-new-critical", "q-new-medium", "q-inreview-high", "q-resolved-low", "q-other-bot"}),
        ({"assignee": "others"}, {"q-fp-high"}),
        ({"reason": "thumbs_down"}, {"q-inreview-high", "q-resolved-low"}),
        ({"reason": "judge"}, {"q-new-medium"}),
        ({"q": "q-fp-high"}, {"q-fp-high"}),
        ({"q": "parcel never"}, {"q-new-medium"}),
        # The "Past 7 days" link of the admin's date filter: aware midnight, as the admin builds it.
        ({"last_activity_at__gte": str((timezone.now() - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0))},
         {"q-new-critical", "q-new-medium", "q-inreview-high", "q-fp-high", "q-other-bot"}),
    ],
)
def test_queue_filters(admin_client, queue, query, expected):
    response = admin_client.get(QUEUE, {"status": "all", **query})
    assert response.status_code == 200, response
    assert set(ids(response)) == expected


def test_queue_chatbot_filter(admin_client, queue, other_chatbot):
    response = admin_client.get(QUEUE, {"chatbot": other_chatbot.pk})
    assert ids(response) == ["q-other-bot"]


def test_assigned_to_me_filter(admin_client, alice, queue):
    Conversation.objects.filter(external_id="q-new-medium").update(assignee=alice)
    assert ids(admin_client.get(QUEUE, {"assignee": "me"})) == ["q-new-medium"]


def test_all_conversations_list_has_flagged_filter(admin_client, queue):
    response = admin_client.get("/admin/conversations/conversation/", {"is_flagged__exact": "0"})
    assert ids(response) == ["not-flagged"]


@pytest.mark.services
def test_text_search_can_use_the_trigram_index(db):
    """The queue's text search can be answered from `turn_text_trgm` instead of reading every turn.

    Tiny test tables make other plans cheapest, so plain scans are switched off: this checks
    that the index matches the SQL the search produces (`UPPER(text) LIKE …`); whether the
    planner uses it for a given term is its choice (a term in every turn is faster without).
    """
    from django.db import connection

    from apps.conversations.models import Turn
    from apps.review.filtersets import turn_text_contains
    from tests.conftest import require_postgres

    require_postgres("the trigram index")
    turns = Turn.objects.filter(turn_text_contains("parcel never")).order_by().values("conversation_id")
    sql, params = turns.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Bitmap Index Scan on turn_text_trgm" in plan, plan
