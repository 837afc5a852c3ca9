"""The conversation judge offline (heuristic explanations), its token budget, and what reviewers
see: the grade at the top of the transcript, the "conversation judge" flag, the queue filter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation
from apps.core.tokens import count_tokens
from apps.evaluations.conversation_judge import conversation_judge_sweep
from apps.evaluations.conversation_rubric import conversation_system_prompt, conversation_transcript
from apps.evaluations.models import ConversationEvaluation
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db
QUEUE = "/admin/review/flaggedconversation/"
CONVERSATIONS_API = "/api/v1/conversations/"


def ended_conversation(chatbot, exchanges: list[dict], **fields) -> Conversation:
    last = timezone.now() - timedelta(hours=1)
    conversation = make_conversation(
        chatbot, turn_count=len(exchanges), last_activity_at=last, **fields
    )
    for n, exchange in enumerate(exchanges, start=1):
        make_turn(
            conversation,
            sequence=n,
            timestamp=last - timedelta(minutes=len(exchanges) - n),
            **{"user_message": "Hello", "bot_response": "Hi, how can I help?", **exchange},
        )
    return conversation


def judge_all(capture) -> None:
    with capture(execute=True):
        conversation_judge_sweep()


def test_heuristic_explains_a_failed_conversation(chatbot, django_capture_on_commit_callbacks):
    conversation = ended_conversation(
        chatbot,
        [
            {
                "user_message": "How do I return my blue jacket order?",
                "bot_response": "Returns are easy.",
            },
            {
                "user_message": "How do I return my blue jacket order please",
                "bot_response": "Sorry, an error occurred.",
                "has_error": True,
                "error": "timeout",
            },
            {
                "user_message": "return my blue jacket order how",
                "bot_response": "I didn't understand.",
                "fallback_used": True,
            },
            {
                "user_message": "This is useless, let me speak to a human",
                "bot_response": "I didn't understand.",
                "fallback_used": True,
                "thumbs_down": 1,
            },
        ],
    )

    judge_all(django_capture_on_commit_callbacks)

    evaluation = ConversationEvaluation.objects.get(conversation=conversation)
    assert (evaluation.status, evaluation.evaluator) == ("done", "heuristic")
    assert evaluation.reasoning.startswith("Heuristic: ")
    signals = evaluation.signals
    assert signals["last_turn_thumbs_down"] == 4 and signals["last_turn_failed"] == 4
    assert signals["rephrased_turns"] == [2, 3]
    assert signals["failure_streak"] == {"from_turn": 2, "turns": 3}
    assert signals["handoff_request"]["turn"] == 4
    assert "turn 4" in evaluation.reasoning and "from turn 2" in evaluation.reasoning
    assert evaluation.handoff_needed is True
    assert (
        evaluation.failed_turn == 1
    )  # the user's question the bot never answered (rephrased from turn 2)
    assert evaluation.overall < 5
    conversation.refresh_from_db()
    assert "conversation_judge" in conversation.flag_reasons and conversation.is_flagged


def test_heuristic_finds_nothing_wrong_in_a_good_conversation(
    chatbot, django_capture_on_commit_callbacks
):
    conversation = ended_conversation(
        chatbot,
        [
            {
                "user_message": "When does my order 1234 ship?",
                "bot_response": "Order 1234 ships tomorrow.",
            },
            {
                "user_message": "Great, and can I pay by invoice?",
                "bot_response": "Yes, invoice is available.",
            },
        ],
    )

    judge_all(django_capture_on_commit_callbacks)

    evaluation = ConversationEvaluation.objects.get(conversation=conversation)
    assert (
        evaluation.overall >= 8
        and evaluation.failed_turn is None
        and evaluation.handoff_needed is False
    )
    assert "No problem signals found" in evaluation.reasoning
    conversation.refresh_from_db()
    assert not conversation.is_flagged


@pytest.mark.parametrize("budget", [700, 1200, 3000])
def test_the_transcript_fits_the_budget_and_keeps_the_ends_and_flagged_turns(chatbot, budget):
    conversation = make_conversation(chatbot)
    words = (
        "the order was supposed to arrive last week and it still has not arrived, what happened "
        * 6
    )
    turns = [
        make_turn(
            conversation,
            sequence=n,
            user_message=f"U{n}: {words}",
            bot_response=f"B{n}: {words}",
            thumbs_down=int(n == 20),
        )
        for n in range(1, 41)
    ]
    system = conversation_system_prompt()

    transcript = conversation_transcript(
        turns=turns, budget_tokens=budget, model="gpt-4o-mini", max_chars=4000, system_prompt=system
    )

    measured = (
        count_tokens(system, model="gpt-4o-mini").tokens
        + count_tokens(transcript.text, model="gpt-4o-mini").tokens
    )
    assert measured == transcript.tokens <= budget
    assert {1, 40} <= set(transcript.verbatim)
    assert "U1:" in transcript.text and "U40:" in transcript.text
    assert "This conversation has 40 turns; it was shortened" in transcript.text
    assert set(transcript.verbatim) | set(transcript.summarised) | set(transcript.elided) == set(
        range(1, 41)
    )
    if budget >= 1200:
        assert 20 in transcript.verbatim and "U20:" in transcript.text  # the 👎 turn


def test_a_short_conversation_is_sent_whole(chatbot):
    conversation = make_conversation(chatbot)
    turns = [make_turn(conversation, sequence=n, user_message=f"question {n}") for n in range(1, 4)]
    transcript = conversation_transcript(
        turns=turns, budget_tokens=6000, model="gpt-4o-mini", max_chars=4000
    )
    assert transcript.verbatim == [1, 2, 3] and not transcript.elided and not transcript.summarised
    assert "shortened" not in transcript.text


def test_the_transcript_shows_the_grade_and_the_queue_filters_and_sorts_by_it(
    admin_client, chatbot, django_capture_on_commit_callbacks
):
    bad = ended_conversation(
        chatbot,
        [
            {
                "user_message": "Cancel my subscription",
                "bot_response": "I didn't understand.",
                "fallback_used": True,
            },
            {
                "user_message": "Cancel my subscription now",
                "bot_response": "I didn't understand.",
                "fallback_used": True,
            },
        ],
        external_id="conv-bad",
    )
    good = ended_conversation(
        chatbot,
        [{"user_message": "Opening hours?", "bot_response": "9 to 5 on weekdays."}],
        external_id="conv-good",
        is_flagged=True,
        flag_reasons=["manual"],
    )
    unjudged = make_conversation(
        chatbot, external_id="conv-unjudged", is_flagged=True, flag_reasons=["risk"]
    )
    judge_all(django_capture_on_commit_callbacks)
    bad.refresh_from_db()
    assert bad.flag_reasons == ["conversation_judge"]

    page = admin_client.get(f"/admin/conversations/conversation/{bad.pk}/change/").content.decode()
    top = page.index('id="conversation-evaluation"')
    assert top < page.index('aria-label="Transcript"')
    section = page[top : page.index("</section>", top)]
    assert "heuristic" in section and "Conversation judge" in section
    assert "went wrong at" in section and "turn #1" in section
    assert "The conversation ends on the fallback (turn 2)." in section

    low = admin_client.get(QUEUE, {"status": "all", "conversation_judge": "3to5"})
    assert [c.external_id for c in low.context["cl"].result_list] == ["conv-bad"]
    none = admin_client.get(QUEUE, {"status": "all", "conversation_judge": "none"})
    assert [c.external_id for c in none.context["cl"].result_list] == [unjudged.external_id]
    reason = admin_client.get(QUEUE, {"status": "all", "reason": "conversation_judge"})
    assert [c.external_id for c in reason.context["cl"].result_list] == ["conv-bad"]
    assert "<b>Conversation:</b> Heuristic:" in reason.content.decode()  # why it is in the queue

    listing = admin_client.get(QUEUE, {"status": "all"})
    column = listing.context["cl"].list_display.index("conversation_judge")
    ascending = admin_client.get(QUEUE, {"status": "all", "o": str(column)})
    ordered = [c.external_id for c in ascending.context["cl"].result_list]
    assert ordered.index("conv-bad") < ordered.index("conv-good")
    descending = admin_client.get(QUEUE, {"status": "all", "o": f"-{column}"})
    ordered = [c.external_id for c in descending.context["cl"].result_list]
    assert ordered.index("conv-good") < ordered.index("conv-bad")
    assert good.pk


def test_conversation_judge_metrics_agree_on_the_dashboard_the_api_and_alerts(
    admin_client, chatbot, django_capture_on_commit_callbacks
):
    from apps.alerts.selectors import metric_compute
    from apps.review.selectors import Window, turn_figures

    ended_conversation(
        chatbot,
        [
            {
                "user_message": "Talk to a human now",
                "bot_response": "I didn't understand.",
                "fallback_used": True,
                "thumbs_down": 1,
                # The risk engine's score lowers policy adherence (the heuristic's signal).
                "risk_score": 60,
            }
        ],
    )
    ended_conversation(
        chatbot, [{"user_message": "Opening hours?", "bot_response": "9 to 5 on weekdays."}]
    )
    judge_all(django_capture_on_commit_callbacks)
    overalls = list(ConversationEvaluation.objects.values_list("overall", flat=True))
    assert sorted(o < chatbot.conversation_judge_flag_below for o in overalls) == [False, True]
    window = Window.last(24)

    dashboard = turn_figures(chatbot_ids=[chatbot.pk], window=window)["metrics"]
    api = admin_client.get(
        "/api/v1/stats/overview",
        {
            "chatbot": chatbot.pk,
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
        },
    ).json()["metrics"]
    expected = {
        "conversation_score": round(sum(overalls) / 2, 4),
        "conversation_low_share": 50.0,
        "handoff_needed_share": 50.0,
    }
    # Each criterion's average, counted by hand from the stored grades.
    for criterion in ("goal_completion", "resolution", "user_frustration", "policy_adherence"):
        scores = list(ConversationEvaluation.objects.values_list(criterion, flat=True))
        assert len(scores) == 2 and None not in scores and len(set(scores)) == 2, (
            criterion,
            scores,
        )
        expected[f"conversation_{criterion}"] = round(sum(scores) / 2, 4)
    for name, value in expected.items():
        alert = metric_compute(
            metric=name, chatbot_id=chatbot.pk, since=window.since, until=window.until
        )
        assert dashboard[name]["value"] == api[name]["value"] == alert.value == value, name
        assert dashboard[name]["sample_size"] == alert.sample_size == 2
    series = turn_figures(chatbot_ids=[chatbot.pk], window=window)["trend"]["series"]
    for name, value in expected.items():
        assert [v for v in series[name] if v is not None] == [value], name


def test_the_staff_api_lists_and_filters_by_the_conversation_judge(
    admin_client, chatbot, django_capture_on_commit_callbacks
):
    ended_conversation(
        chatbot,
        [
            {
                "user_message": "Cancel it",
                "bot_response": "I didn't understand.",
                "fallback_used": True,
                "thumbs_down": 1,
            }
        ],
        external_id="api-bad",
    )
    ended_conversation(
        chatbot,
        [{"user_message": "Opening hours?", "bot_response": "9 to 5 on weekdays."}],
        external_id="api-good",
    )
    judge_all(django_capture_on_commit_callbacks)

    listed = admin_client.get(CONVERSATIONS_API, {"conversation_judge_max": 5}).json()["results"]
    assert [row["external_id"] for row in listed] == ["api-bad"]
    assert listed[0]["conversation_judge_score"] < 5
    good = admin_client.get(CONVERSATIONS_API, {"conversation_judge_min": 5}).json()["results"]
    assert [row["external_id"] for row in good] == ["api-good"]
    assert admin_client.get(CONVERSATIONS_API, {"conversation_judge_min": "x"}).status_code == 400


def test_staff_rerun_the_conversation_judge_from_its_admin(
    admin_client, chatbot, django_capture_on_commit_callbacks
):
    from apps.audit.models import AuditEvent

    conversation = ended_conversation(
        chatbot, [{"user_message": "Opening hours?", "bot_response": "9 to 5."}]
    )
    judge_all(django_capture_on_commit_callbacks)
    evaluation = ConversationEvaluation.objects.get()
    listing = admin_client.get("/admin/evaluations/conversationevaluation/")
    assert listing.status_code == 200 and str(conversation) in listing.content.decode()
    assert (
        admin_client.get(
            f"/admin/evaluations/conversationevaluation/{evaluation.pk}/change/"
        ).status_code
        == 200
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/evaluations/conversationevaluation/",
            {"action": "rerun_conversation_judge", "_selected_action": [evaluation.pk]},
        )
    assert response.status_code == 302
    evaluation.refresh_from_db()
    assert (evaluation.status, evaluation.trigger, evaluation.attempts) == ("done", "rerun", 1)
    assert evaluation.created_by.username == "alice"
    assert AuditEvent.objects.filter(action="conversation_judge.rerun").count() == 1
