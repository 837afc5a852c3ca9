"""Query counts of the queue, the review page, the dashboard and the API lists do not grow with rows."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.conversations.models import LLMCall
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


def add_rows(chatbot, count: int, conversation=None) -> None:
    for i in range(count):
        conv = conversation or make_conversation(chatbot, is_flagged=True, flag_reasons=["risk"], max_risk_score=80)
        turn = make_turn(conv, risk_score=80, is_flagged=True, flag_reasons=["risk"],
                         risk_reasons=[{"rule": "r", "points": 80}])
        Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version=f"v{i}",
                                  status="done", overall=3.0, reasoning="meh")
        Feedback.objects.create(turn=turn, chatbot=chatbot, voter_key=f"voter-{i}", rating="down", comment="bad")
        LLMCall.objects.create(chatbot=chatbot, conversation=conv, turn=turn, model="gpt-4o",
                               cost_usd=Decimal("0.01"), duration_ms=10)


def count_queries(client, url: str, data: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, data or {})
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/review/flaggedconversation/",
        "/admin/conversations/conversation/",
        "/admin/conversations/turn/",
        "/admin/conversations/llmcall/",
        "/admin/",
        "/api/v1/conversations/",
        "/api/v1/turns/",
        "/api/v1/evaluations/",
        "/api/v1/feedback-items/",
        "/api/v1/alert-events/",
        "/api/v1/stats/overview",
        "/api/v1/stats/llm-calls",
    ],
)
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_list_pages_use_constant_queries(client, request, settings, chatbot, user, url):
    settings.REVIEW_STATS_CACHE_SECONDS = 0  # measure the live path of the dashboard and stats
    client.force_login(request.getfixturevalue(user))
    add_rows(chatbot, 3)
    client.get(url)  # warm caches (content types, sessions)
    small = count_queries(client, url)
    add_rows(chatbot, 12)
    assert count_queries(client, url) == small


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_review_page_and_detail_use_constant_queries(client, request, chatbot, user):
    client.force_login(request.getfixturevalue(user))
    conversation = make_conversation(chatbot, is_flagged=True, flag_reasons=["risk"])
    add_rows(chatbot, 2, conversation=conversation)
    page = f"/admin/conversations/conversation/{conversation.pk}/change/"
    detail = f"/api/v1/conversations/{conversation.pk}/"
    client.get(page)
    small = (count_queries(client, page), count_queries(client, detail))
    add_rows(chatbot, 10, conversation=conversation)
    assert (count_queries(client, page), count_queries(client, detail)) == small
    with CaptureQueriesContext(connection) as ctx:
        client.get(page)
    # 20 before issue 16; the review page now also reads the reviewer's filtered list for
    # next/previous (the changelist's filter lookups and two keyset reads), the judge-vs-reviewer
    # agreement and the history's names: a constant handful more.
    assert len(ctx.captured_queries) <= 24


def test_bulk_export_reads_every_conversation_in_one_query_per_relation(admin_client, chatbot):
    def export_queries() -> list[str]:
        from apps.conversations.models import Conversation

        selected = list(Conversation.objects.values_list("pk", flat=True))
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.post("/admin/review/flaggedconversation/",
                                         {"action": "export_json", "_selected_action": selected})
        assert response.status_code == 200
        # One AuditEvent per exported conversation is the only part that grows.
        return [q["sql"] for q in ctx.captured_queries if 'INSERT INTO "audit_auditevent"' not in q["sql"]]

    add_rows(chatbot, 2)
    few = export_queries()
    add_rows(chatbot, 6)
    assert len(export_queries()) == len(few)
