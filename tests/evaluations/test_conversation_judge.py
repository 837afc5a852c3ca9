"""The conversation judge end to end: the sweep and the `end` event, the task, the real `openai`
client against the local OpenAI-compatible server, exactly-once under races and lost tasks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, LLMCall
from apps.core.tokens import count_tokens
from apps.evaluations.conversation_judge import conversation_judge_rerun, conversation_judge_sweep
from apps.evaluations.models import ConversationEvaluation
from apps.evaluations.sampling import conversation_is_sampled
from apps.evaluations.tasks import conversation_judge
from tests.conftest import require_postgres
from tests.factories import make_conversation, make_turn
from tests.support.openai_server import OpenAIServer, ScriptedResponse
from tests.support.threads import raised, run_together


def conversation_judgment(**overrides: object) -> str:
    data: dict[str, object] = {
        "goal_completion": 9,
        "resolution": 8,
        "user_frustration": 9,
        "policy_adherence": 10,
        "human_handoff": 10,
        "handoff_needed": False,
        "failed_turn": None,
        "reasoning": "The user got the delivery date they asked for.",
    }
    data.update(overrides)
    return json.dumps(data)


def idle_conversation(chatbot, *, turns: int = 6, idle_minutes: int = 45, **fields) -> Conversation:
    last = timezone.now() - timedelta(minutes=idle_minutes)
    conversation = make_conversation(chatbot, turn_count=turns, last_activity_at=last, **fields)
    for n in range(1, turns + 1):
        make_turn(
            conversation,
            user_message=f"question {n} about my order",
            bot_response=f"answer {n}",
            timestamp=last - timedelta(minutes=turns - n),
        )
    return conversation


@pytest.fixture
def conversation_server(judge_settings):
    with OpenAIServer(chat_handler=lambda _request: conversation_judgment()) as server:
        judge_settings.OPENAI_BASE_URL = server.base_url
        yield server


@pytest.mark.django_db
def test_an_idle_conversation_is_judged_once(
    conversation_server, chatbot, django_capture_on_commit_callbacks
):
    conversation = idle_conversation(chatbot)
    recent = idle_conversation(chatbot, idle_minutes=5)  # still going: not judged yet

    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep() == {"idle": 1, "requeued": 0}

    evaluation = ConversationEvaluation.objects.get()
    assert evaluation.conversation_id == conversation.pk
    assert (evaluation.status, evaluation.trigger, evaluation.evaluator) == (
        "done",
        "idle",
        "llm_judge",
    )
    assert evaluation.evaluator_version == "conversation-judge-v1:gpt-4o-mini"
    assert (evaluation.goal_completion, evaluation.resolution, evaluation.human_handoff) == (
        9,
        8,
        10,
    )
    assert evaluation.overall == pytest.approx((9 + 8 + 9 + 10 + 10) / 5)
    assert evaluation.reasoning == "The user got the delivery date they asked for."
    assert evaluation.transcript["turns"] == 6 and evaluation.transcript["elided"] == []
    [request] = conversation_server.requests_to("/chat/completions")
    sent = request["json"]["messages"][1]["content"]
    assert "question 1 about my order" in sent and "answer 6" in sent
    assert request["json"]["response_format"]["json_schema"]["name"] == "conversation_judgment"
    call = LLMCall.objects.get()
    assert (call.purpose, call.function_name, call.conversation_id, call.turn_id) == (
        "judge",
        "conversation_judge",
        conversation.pk,
        None,
    )
    assert evaluation.llm_call_id == call.pk

    # Again: nothing new to judge; a duplicate delivery of the task does nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep() == {"idle": 0, "requeued": 0}
    assert conversation_judge.delay(conversation.pk).get() == "already_done"
    assert len(conversation_server.requests_to("/chat/completions")) == 1
    assert not ConversationEvaluation.objects.filter(conversation=recent).exists()


@pytest.mark.django_db
def test_only_sampled_conversations_are_judged(chatbot, django_capture_on_commit_callbacks):
    chatbot.conversation_judge_sample_rate = 0.5
    chatbot.save()
    conversations = [idle_conversation(chatbot, turns=1) for _ in range(12)]
    expected = {
        c.pk
        for c in conversations
        if conversation_is_sampled(conversation_id=c.pk, sample_rate=0.5)
    }
    assert 0 < len(expected) < 12  # the hash splits them (ids are consecutive)

    with django_capture_on_commit_callbacks(execute=True):
        conversation_judge_sweep()

    assert set(ConversationEvaluation.objects.values_list("conversation_id", flat=True)) == expected


@pytest.mark.django_db
def test_the_end_event_judges_at_once(post_json, chatbot, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            post_json(
                "/api/v1/ingest/turns",
                {
                    "conversation_id": "c-end",
                    "turn_id": f"t{n}",
                    "user_message": "Where is my parcel?",
                    "bot_response": "On its way.",
                },
            )
    assert not ConversationEvaluation.objects.exists()  # not idle, not ended

    with django_capture_on_commit_callbacks(execute=True):
        response = post_json("/api/v1/ingest/turns", {"conversation_id": "c-end", "event": "end"})
    assert response.status_code == 200

    evaluation = ConversationEvaluation.objects.get()
    assert (evaluation.status, evaluation.trigger, evaluation.evaluator) == (
        "done",
        "end",
        "heuristic",
    )
    # A second end event does not judge it again.
    with django_capture_on_commit_callbacks(execute=True):
        post_json("/api/v1/ingest/turns", {"conversation_id": "c-end", "event": "end"})
    assert ConversationEvaluation.objects.count() == 1

    # Resumed after the end, then ended again: judged again, the first grade kept.
    with django_capture_on_commit_callbacks(execute=True):
        post_json(
            "/api/v1/ingest/turns",
            {
                "conversation_id": "c-end",
                "turn_id": "t9",
                "user_message": "And the tracking number?",
                "bot_response": "It is in your email.",
            },
        )
        post_json("/api/v1/ingest/turns", {"conversation_id": "c-end", "event": "end"})
    assert sorted(
        ConversationEvaluation.objects.values_list("trigger", "status", "turn_count")
    ) == [("end", "done", 3), ("end", "done", 4)]


@pytest.mark.django_db
def test_the_conversation_judge_off_judges_nothing(chatbot, django_capture_on_commit_callbacks):
    chatbot.conversation_judge_sample_rate = 0
    chatbot.save()
    idle_conversation(chatbot)
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep() == {"idle": 0, "requeued": 0}
    assert not ConversationEvaluation.objects.exists()


@pytest.mark.django_db
def test_a_no_content_conversation_never_reaches_the_judge(
    conversation_server, chatbot, django_capture_on_commit_callbacks
):
    withheld = idle_conversation(chatbot, consent="no_content")
    judged = idle_conversation(chatbot)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_judge_sweep()
    assert list(ConversationEvaluation.objects.values_list("conversation_id", flat=True)) == [
        judged.pk
    ]
    # A staff re-run queues it anyway: the task still refuses to send it.
    conversation_judge_rerun(conversation_ids=[withheld.pk], actor=None)
    assert conversation_judge.delay(withheld.pk).get() == "not_judgeable"
    assert len(conversation_server.requests_to("/chat/completions")) == 1


@pytest.mark.django_db
def test_a_low_overall_flags_the_conversation_and_names_the_turn(
    conversation_server, chatbot, django_capture_on_commit_callbacks
):
    conversation_server.chat_handler = lambda _request: conversation_judgment(
        goal_completion=2,
        resolution=1,
        user_frustration=3,
        human_handoff=2,
        handoff_needed=True,
        failed_turn=4,
        reasoning="Turn 4: the bot gave a wrong refund window and the user gave up.",
    )
    conversation = idle_conversation(chatbot)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_judge_sweep()

    evaluation = ConversationEvaluation.objects.get()
    assert evaluation.overall < chatbot.conversation_judge_flag_below
    assert evaluation.handoff_needed is True
    assert evaluation.failed_turn == conversation.turns.order_by("sequence")[3].sequence
    conversation.refresh_from_db()
    assert conversation.is_flagged and conversation.flag_reasons == ["conversation_judge"]


@pytest.mark.django_db
def test_a_transient_error_is_retried_and_a_bad_reply_repaired(conversation_server, chatbot):
    conversation = idle_conversation(chatbot)
    ConversationEvaluation.objects.create(
        conversation=conversation,
        chatbot=chatbot,
        evaluator="llm_judge",
        evaluator_version="conversation-judge-v1:gpt-4o-mini",
    )
    conversation_server.script_chat(
        ScriptedResponse(status=503, body={"error": {"message": "overloaded"}}),
        ScriptedResponse(content="I think it went fine."),
    )

    assert conversation_judge.delay(conversation.pk).get() == "done"

    evaluation = ConversationEvaluation.objects.get()
    assert (evaluation.status, evaluation.attempts) == ("done", 2)
    assert (
        LLMCall.objects.filter(function_name="conversation_judge").count() == 3
    )  # 503, invalid, repair
    assert LLMCall.objects.filter(success=False).count() == 1


@pytest.mark.django_db
def test_a_lost_task_is_requeued_by_the_sweeper(
    conversation_server, chatbot, django_capture_on_commit_callbacks
):
    conversation = idle_conversation(chatbot)
    # The sweep created the row but its task never ran (broker outage, a worker that died).
    with django_capture_on_commit_callbacks(execute=False):
        conversation_judge_sweep()
    evaluation = ConversationEvaluation.objects.get()
    assert evaluation.status == "pending" and not conversation_server.requests_to(
        "/chat/completions"
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep() == {"idle": 0, "requeued": 0}  # too recent to be lost
    ConversationEvaluation.objects.update(created_at=timezone.now() - timedelta(minutes=30))
    # A dead worker's lease still running: left alone; once run out, taken over.
    ConversationEvaluation.objects.update(
        claimed_until=timezone.now() + timedelta(minutes=5), attempts=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep()["requeued"] == 0
    ConversationEvaluation.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep()["requeued"] == 1

    evaluation.refresh_from_db()
    assert (evaluation.status, evaluation.attempts) == ("done", 2)
    assert len(conversation_server.requests_to("/chat/completions")) == 1
    assert evaluation.conversation_id == conversation.pk


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_judge_once(judge_settings, chatbot):
    require_postgres("row locks between two connections")
    with OpenAIServer(
        chat_handler=lambda _request: conversation_judgment(), chat_delay=0.3
    ) as server:
        judge_settings.OPENAI_BASE_URL = server.base_url
        conversation = idle_conversation(chatbot)
        ConversationEvaluation.objects.create(
            conversation=conversation,
            chatbot=chatbot,
            evaluator="llm_judge",
            evaluator_version="conversation-judge-v1:gpt-4o-mini",
        )

        results = run_together(2, lambda _index: conversation_judge(conversation.pk))

        assert not raised(results)
        assert sorted(results) == ["claimed_elsewhere", "done"]
        assert len(server.requests_to("/chat/completions")) == 1
    evaluation = ConversationEvaluation.objects.get()
    assert (evaluation.status, evaluation.attempts) == ("done", 1)
    assert LLMCall.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_sweep_and_the_end_event_racing_create_one_evaluation(chatbot):
    require_postgres("concurrent inserts on two connections")
    from apps.evaluations.conversation_judge import conversation_judge_enqueue

    conversation = idle_conversation(chatbot)

    def work(index: int) -> object:
        if index == 0:
            return conversation_judge_sweep()
        return conversation_judge_enqueue(
            conversation=Conversation.objects.select_related("chatbot").get(pk=conversation.pk)
        )

    assert not raised(run_together(2, work))
    evaluation = ConversationEvaluation.objects.get()
    assert evaluation.status == "done"


@pytest.mark.django_db
def test_the_sweep_query_uses_the_activity_index(chatbot):
    require_postgres("EXPLAIN of PostgreSQL")
    from django.db import connection

    from apps.evaluations.selectors import conversations_idle_unjudged

    for _ in range(3):
        idle_conversation(chatbot, turns=1)
    query = conversations_idle_unjudged(
        chatbot=chatbot, version="heuristic-conversation-v1", now=timezone.now()
    )
    sql, params = query.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Either activity index (the planner picks by table size); never a scan of every conversation.
    assert "Seq Scan" not in plan
    assert any(name in plan for name in ("using conv_chatbot_activity", "using conv_activity"))
    # The evaluations side by an index too: the version index, or (once the planner has
    # statistics of a few rows) the conversation foreign key's.
    assert any(name in plan for name in ("using conv_eval_version_turns",
                                         "using evaluations_conversationevaluation_conversation_id"))


@pytest.mark.django_db
def test_the_prompt_of_a_long_conversation_fits_the_budget(
    conversation_server, chatbot, judge_settings
):
    judge_settings.CONVERSATION_JUDGE_MAX_PROMPT_TOKENS = 1500
    conversation = idle_conversation(chatbot, turns=0)
    long_text = "I would like to know more about the delivery options for my order, please. " * 8
    for n in range(1, 61):
        make_turn(
            conversation,
            sequence=n,
            user_message=f"message {n}: {long_text}",
            bot_response=f"reply {n}: {long_text}",
            fallback_used=(n == 30),
        )
    Conversation.objects.filter(pk=conversation.pk).update(turn_count=60)
    ConversationEvaluation.objects.create(
        conversation=conversation,
        chatbot=chatbot,
        evaluator="llm_judge",
        evaluator_version="conversation-judge-v1:gpt-4o-mini",
    )

    assert conversation_judge.delay(conversation.pk).get() == "done"

    [request] = conversation_server.requests_to("/chat/completions")
    system, user = (m["content"] for m in request["json"]["messages"])
    tokens = (
        count_tokens(system, model="gpt-4o-mini").tokens
        + count_tokens(user, model="gpt-4o-mini").tokens
    )
    assert tokens <= 1500
    for kept in ("message 1:", "message 2:", "message 59:", "message 60:", "message 30:"):
        assert kept in user  # first, last and the flagged (fallback) turn
    assert "This conversation has 60 turns; it was shortened" in user
    transcript = ConversationEvaluation.objects.get().transcript
    assert transcript["prompt_tokens"] <= 1500 and transcript["budget_tokens"] == 1500
    assert {1, 2, 30, 59, 60} <= set(transcript["verbatim"])
    assert transcript["elided"] or transcript["summarised"]


# --- a conversation resumed after its grade ------------------------------------------------------


def _say(post_json, external_id: str, n: int, text: str, at) -> None:
    response = post_json(
        "/api/v1/ingest/turns",
        {
            "conversation_id": external_id,
            "turn_id": f"{external_id}-{n}",
            "user_message": text,
            "bot_response": f"answer to {text}",
            "timestamp": at.isoformat(),
        },
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_a_conversation_resumed_after_its_grade_is_judged_again_once_idle(
    conversation_server, post_json, chatbot, django_capture_on_commit_callbacks
):
    from apps.evaluations.selectors import conversation_evaluation_latest

    started = timezone.now() - timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            _say(post_json, "c-resumed", n, f"where is parcel {n}", started + timedelta(minutes=n))
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep()["idle"] == 1
    first = ConversationEvaluation.objects.get()
    assert (first.status, first.turn_count) == ("done", 3)

    # The user comes back: two more turns, just now.
    with django_capture_on_commit_callbacks(execute=True):
        for n in (3, 4):
            _say(post_json, "c-resumed", n, f"still no parcel {n}", timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep()["idle"] == 0  # going again: not over yet
    assert ConversationEvaluation.objects.count() == 1

    # Idle again (the sweep half an hour later): judged again, exactly once.
    later = timezone.now() + timedelta(minutes=chatbot.conversation_idle_minutes + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep(now=later)["idle"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_judge_sweep(now=later) == {"idle": 0, "requeued": 0}
    conversation = Conversation.objects.get(external_id="c-resumed")
    assert conversation_judge.delay(conversation.pk).get() == "already_done"

    grades = list(ConversationEvaluation.objects.order_by("created_at", "id"))
    assert [(g.status, g.turn_count) for g in grades] == [("done", 3), ("done", 5)]
    assert grades[0].pk == first.pk and grades[0].completed_at == first.completed_at  # history kept
    # The turn judge grades the ingested turns on the same server: count the conversation judge's.
    requests = [
        r
        for r in conversation_server.requests_to("/chat/completions")
        if r["json"]["response_format"]["json_schema"]["name"] == "conversation_judgment"
    ]
    assert len(requests) == 2
    assert "still no parcel 4" in requests[1]["json"]["messages"][1]["content"]
    assert "still no parcel" not in requests[0]["json"]["messages"][1]["content"]
    assert conversation_evaluation_latest(conversation_id=conversation.pk).pk == grades[1].pk
    assert LLMCall.objects.filter(function_name="conversation_judge").count() == 2


@pytest.mark.django_db
def test_a_pending_grade_whose_turns_are_covered_already_is_dropped_unjudged(
    conversation_server, chatbot, django_capture_on_commit_callbacks
):
    conversation = idle_conversation(chatbot, turns=2)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_judge_sweep()
    # A sweep that chose the conversation just before that grade completed.
    ConversationEvaluation.objects.create(
        conversation=conversation,
        chatbot=chatbot,
        evaluator="llm_judge",
        evaluator_version="conversation-judge-v1:gpt-4o-mini",
    )
    assert conversation_judge(conversation.pk) == "already_covered"
    assert list(ConversationEvaluation.objects.values_list("status", "turn_count")) == [("done", 2)]
    assert len(conversation_server.requests_to("/chat/completions")) == 1


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_racing_over_a_resumed_conversation_judge_it_again_once(judge_settings, chatbot):
    require_postgres("concurrent inserts on two connections")
    with OpenAIServer(chat_handler=lambda _request: conversation_judgment()) as server:
        judge_settings.OPENAI_BASE_URL = server.base_url
        conversation = idle_conversation(chatbot, turns=2)
        conversation_judge_sweep()
        assert ConversationEvaluation.objects.get().turn_count == 2
        # Resumed, and idle again.
        make_turn(
            conversation,
            user_message="one more thing",
            bot_response="sure",
            timestamp=timezone.now() - timedelta(minutes=40),
        )
        Conversation.objects.filter(pk=conversation.pk).update(turn_count=3)

        assert not raised(run_together(2, lambda _index: conversation_judge_sweep()))
        assert not raised(run_together(2, lambda _index: conversation_judge(conversation.pk)))

        assert sorted(ConversationEvaluation.objects.values_list("status", "turn_count")) == [
            ("done", 2),
            ("done", 3),
        ]
        assert len(server.requests_to("/chat/completions")) == 2
