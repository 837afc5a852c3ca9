"""Re-running the judge (staff action) and the evaluation admin pages."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.conversations.models import Turn
from apps.evaluations.admin import EvaluationInline
from apps.evaluations.models import Evaluation
from apps.evaluations.services import judge_rerun
from apps.evaluations.tasks import turn_judge
from tests.evaluations.conftest import judgment
from tests.factories import make_chatbot, make_conversation, make_turn
from tests.support.openai_server import ScriptedResponse

pytestmark = pytest.mark.django_db


def judged_turn(chatbot, **fields) -> Turn:
    turn = make_turn(make_conversation(chatbot), judge_status="pending", **fields)
    turn_judge.delay(turn.pk)
    turn.refresh_from_db()
    return turn


def test_rerun_replaces_the_grade_and_is_audited(judge_server, chatbot, alice, django_capture_on_commit_callbacks):
    judge_server.script_chat(
        ScriptedResponse(content=judgment(relevance=9)),
        ScriptedResponse(content=judgment(relevance=2, accuracy=2, helpfulness=2, clarity=2, safety=2)),
    )
    turn = judged_turn(chatbot)
    assert turn.judge_overall > 8

    with django_capture_on_commit_callbacks(execute=True):
        assert judge_rerun(turn_ids=[turn.pk], actor=alice) == 1

    evaluation = Evaluation.objects.get(turn=turn)  # still one row per (turn, version)
    assert evaluation.status == "done"
    assert evaluation.relevance == 2
    assert evaluation.attempts == 1
    assert evaluation.created_by == alice
    turn.refresh_from_db()
    assert turn.judge_overall == 2
    assert turn.conversation.min_judge_score == 2
    assert turn.flag_reasons == ["judge"]
    event = AuditEvent.objects.get(action="judge.rerun")
    assert event.actor == alice
    assert event.object_id == str(turn.conversation_id)
    assert event.data == {"turn_ids": [turn.pk], "count": 1}


def test_rerun_judges_unsampled_turns_and_new_versions(chatbot, alice, django_capture_on_commit_callbacks, settings):
    chatbot.judge_enabled = False
    chatbot.save()
    conversation = make_conversation(chatbot)
    turns = [make_turn(conversation) for _ in range(3)]

    with django_capture_on_commit_callbacks(execute=True):
        assert judge_rerun(turn_ids=[t.pk for t in turns], actor=alice) == 3

    assert Evaluation.objects.filter(status="done", evaluator="heuristic", created_by=alice).count() == 3
    assert AuditEvent.objects.filter(action="judge.rerun").count() == 1  # one per conversation
    assert judge_rerun(turn_ids=[], actor=alice) == 0


def test_evaluation_changelist_and_detail(admin_client, chatbot, django_assert_max_num_queries):
    for _ in range(5):
        judged_turn(chatbot, bot_response="")
    url = reverse("admin:evaluations_evaluation_changelist")

    with django_assert_max_num_queries(12):
        response = admin_client.get(url)

    assert response.status_code == 200
    assert response.content.count(b"Heuristic (offline) \xc2\xb7 heuristic-v1") == 5
    evaluation = Evaluation.objects.first()
    detail = admin_client.get(reverse("admin:evaluations_evaluation_change", args=[evaluation.pk]))
    assert detail.status_code == 200
    assert b"The bot gave no answer." in detail.content
    assert b"empty_answer" in detail.content


def test_changelist_query_count_does_not_grow(admin_client, chatbot, django_assert_max_num_queries):
    url = reverse("admin:evaluations_evaluation_changelist")
    judged_turn(chatbot)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(url)
    for _ in range(20):
        judged_turn(chatbot)
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(url)


def test_reviewer_sees_only_assigned_chatbots(client, bob, chatbot):
    judged_turn(chatbot, user_message="mine", bot_response="mine answer")
    judged_turn(make_chatbot(), user_message="theirs", bot_response="theirs answer")
    bob.user_permissions.add(Permission.objects.get(codename="view_evaluation"))
    client.force_login(bob)

    response = client.get(reverse("admin:evaluations_evaluation_changelist"))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list.values_list("chatbot_id", flat=True)) == [chatbot.pk]


def test_rerun_action_from_the_admin(admin_client, chatbot, alice):
    turn = judged_turn(chatbot)
    evaluation = Evaluation.objects.get(turn=turn)

    response = admin_client.post(
        reverse("admin:evaluations_evaluation_changelist"),
        {"action": "rerun_judge", "_selected_action": [evaluation.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert b"Re-running the judge on 1 turn(s)." in response.content
    assert AuditEvent.objects.filter(action="judge.rerun", actor=alice).count() == 1


def test_evaluation_inline_shows_scores_and_reasoning(chatbot, alice):
    turn = judged_turn(chatbot, bot_response="")
    inline = EvaluationInline(Turn, admin.site)
    request = RequestFactory().get("/")
    request.user = alice

    assert not inline.has_add_permission(request, turn)
    assert not inline.has_change_permission(request, turn)
    assert not inline.has_delete_permission(request, turn)
    assert {"overall", "hallucination", "reasoning", "safety", "error"} <= set(inline.get_readonly_fields(request, turn))
    [evaluation] = inline.get_queryset(request).filter(turn=turn)
    assert inline.evaluator_label(evaluation) == "Heuristic (offline) · heuristic-v1"


def test_turn_admin_page_shows_the_evaluation(admin_client, chatbot):
    turn = judged_turn(chatbot, bot_response="")

    response = admin_client.get(reverse("admin:conversations_turn_change", args=[turn.pk]))

    assert response.status_code == 200
    assert "Heuristic (offline) · heuristic-v1" in response.content.decode()
    assert "Heuristic: The bot gave no answer." in response.content.decode()
