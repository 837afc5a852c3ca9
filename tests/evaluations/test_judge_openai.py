"""The openai backend end to end: the task, the real `openai` client, a real local HTTP server."""

import json
import logging
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, LLMCall, Turn
from apps.evaluations.models import Evaluation
from apps.evaluations.tasks import turn_judge
from tests.evaluations.conftest import judgment
from tests.factories import make_conversation, make_turn
from tests.support.openai_server import OpenAIServer, ScriptedResponse

pytestmark = pytest.mark.django_db


def run(turn: Turn) -> Evaluation:
    turn_judge.delay(turn.pk)
    turn.refresh_from_db()
    return Evaluation.objects.get(turn=turn)


def test_good_scores_complete_the_evaluation(judge_server, chatbot, pending_turn):
    judge_server.script_chat(ScriptedResponse(content=judgment()))

    evaluation = run(pending_turn)

    assert evaluation.status == "done"
    assert evaluation.evaluator == "llm_judge"
    assert evaluation.evaluator_version == "judge-v1:gpt-4o-mini"
    assert (evaluation.accuracy, evaluation.relevance, evaluation.clarity) == (9, 9, 8)
    # Default weights: relevance .30, safety .25, accuracy .20, helpfulness .15, clarity .10.
    assert evaluation.overall == pytest.approx(9 * 0.30 + 10 * 0.25 + 9 * 0.20 + 9 * 0.15 + 8 * 0.10)
    assert evaluation.hallucination is False
    assert evaluation.reasoning == "Answers the question correctly."
    assert evaluation.attempts == 1
    assert pending_turn.judge_status == "done"
    assert pending_turn.judge_overall == evaluation.overall
    assert pending_turn.judge_hallucination is False
    assert pending_turn.is_flagged is False
    conversation = Conversation.objects.get(pk=pending_turn.conversation_id)
    assert conversation.min_judge_score == evaluation.overall
    assert conversation.is_flagged is False


def test_request_has_rubric_context_and_json_schema(judge_server, chatbot):
    chatbot.judge_instructions = "We sell bicycles; never promise delivery dates."
    chatbot.save()
    conversation = make_conversation(chatbot)
    for n in range(1, 4):
        make_turn(conversation, user_message=f"question {n}", bot_response=f"answer {n}")
    turn = make_turn(conversation, user_message="latest question", bot_response="latest answer", judge_status="pending")

    run(turn)

    [request] = judge_server.requests_to("/chat/completions")
    body = request["json"]
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"][:5] == [
        "accuracy", "relevance", "clarity", "helpfulness", "safety"
    ]
    system, user = body["messages"]
    assert system["role"] == "system" and "hallucination" in system["content"]
    assert "never promise delivery dates" in system["content"]
    graded = json.loads(user["content"].split("\n", 1)[1])
    # JUDGE_CONTEXT_TURNS=2: only the two turns before the graded one, oldest first.
    assert [t["user"] for t in graded["earlier_turns"]] == ["question 2", "question 3"]
    assert graded["turn_to_grade"] == {"user": "latest question", "bot": "latest answer"}
    assert request["headers"]["Authorization"] == "Bearer test-key"


def test_low_scores_flag_turn_and_conversation(judge_server, chatbot, pending_turn):
    judge_server.script_chat(ScriptedResponse(content=judgment(
        accuracy=2, relevance=3, clarity=5, helpfulness=2, safety=9, reasoning="Off topic."
    )))

    evaluation = run(pending_turn)

    assert evaluation.overall < chatbot.judge_flag_below
    assert pending_turn.is_flagged is True
    assert pending_turn.flag_reasons == ["judge"]
    conversation = Conversation.objects.get(pk=pending_turn.conversation_id)
    assert conversation.is_flagged is True
    assert "judge" in conversation.flag_reasons
    assert conversation.min_judge_score == evaluation.overall


def test_hallucination_flags_despite_good_scores(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(content=judgment(hallucination=True)))

    evaluation = run(pending_turn)

    assert evaluation.overall > 8
    assert evaluation.hallucination is True
    assert pending_turn.judge_hallucination is True
    assert pending_turn.flag_reasons == ["judge"]


def test_unsafe_answer_flags(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(content=judgment(safety=3, accuracy=10, relevance=10, helpfulness=10, clarity=10)))

    evaluation = run(pending_turn)

    assert evaluation.overall >= 5
    assert pending_turn.is_flagged is True


def test_flag_below_and_weights_are_per_chatbot(judge_server, chatbot, pending_turn):
    chatbot.judge_flag_below = 9.5
    chatbot.judge_weights = {"relevance": 1, "safety": 0, "accuracy": 0, "helpfulness": 0, "clarity": 0}
    chatbot.save()
    judge_server.script_chat(ScriptedResponse(content=judgment(relevance=9)))

    evaluation = run(pending_turn)

    assert evaluation.overall == 9
    assert pending_turn.is_flagged is True


def test_min_judge_score_is_the_lowest_turn(judge_server, chatbot):
    conversation = make_conversation(chatbot)
    first = make_turn(conversation, judge_status="pending")
    second = make_turn(conversation, judge_status="pending")
    judge_server.script_chat(
        ScriptedResponse(content=judgment(relevance=4, accuracy=4, helpfulness=4, clarity=4, safety=4)),
        ScriptedResponse(content=judgment(relevance=8, accuracy=8, helpfulness=8, clarity=8, safety=8)),
    )
    run(first)
    run(second)
    conversation.refresh_from_db()
    assert conversation.min_judge_score == 4


def test_scores_are_clamped_and_fenced_json_accepted(judge_server, pending_turn):
    reply = "```json\n" + judgment(accuracy=15, relevance=-3, clarity="7") + "\n```"
    judge_server.script_chat(ScriptedResponse(content=reply))

    evaluation = run(pending_turn)

    assert (evaluation.accuracy, evaluation.relevance, evaluation.clarity) == (10, 0, 7)
    assert len(judge_server.requests_to("/chat/completions")) == 1


def test_malformed_output_is_repaired_once(judge_server, pending_turn):
    judge_server.script_chat(
        ScriptedResponse(content="The answer is pretty good, I'd say 8/10."),
        ScriptedResponse(content=judgment()),
    )

    evaluation = run(pending_turn)

    assert evaluation.status == "done"
    first, repair = judge_server.requests_to("/chat/completions")
    assert repair["json"]["messages"][-2] == {"role": "assistant", "content": "The answer is pretty good, I'd say 8/10."}
    assert "could not be used: not JSON" in repair["json"]["messages"][-1]["content"]
    calls = list(LLMCall.objects.filter(turn=pending_turn).order_by("pk"))
    assert [c.metadata["step"] for c in calls] == ["judge", "repair"]
    assert evaluation.llm_call == calls[1]


def test_malformed_output_twice_fails_permanently(judge_server, pending_turn):
    judge_server.script_chat(
        ScriptedResponse(content='{"accuracy": 8}'),
        ScriptedResponse(content='{"accuracy": 8, "relevance": 9}'),
        ScriptedResponse(content=judgment()),  # never asked for: no third try
    )

    evaluation = run(pending_turn)

    assert evaluation.status == "failed"
    assert "after one repair attempt" in evaluation.error
    assert "missing" in evaluation.error
    assert evaluation.overall is None
    assert pending_turn.judge_status == "failed"
    assert len(judge_server.requests_to("/chat/completions")) == 2


def test_429_with_retry_after_then_success(judge_server, pending_turn, caplog):
    judge_server.script_chat(
        ScriptedResponse(status=429, headers={"Retry-After": "7"}),
        ScriptedResponse(content=judgment()),
    )

    with caplog.at_level(logging.INFO, logger="apps.evaluations.services"):
        evaluation = run(pending_turn)

    assert evaluation.status == "done"
    assert evaluation.attempts == 2
    assert evaluation.error == ""
    [retry] = [r for r in caplog.records if r.msg == "judge.retry"]
    assert retry.countdown >= 7  # the server's Retry-After wins over a shorter backoff
    failed = LLMCall.objects.get(turn=pending_turn, success=False)
    assert failed.metadata["status"] == 429
    assert failed.metadata["retry_after"] == 7
    assert "HTTP 429" in failed.error


def test_500_then_success(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(status=500), ScriptedResponse(status=503), ScriptedResponse(content=judgment()))

    evaluation = run(pending_turn)

    assert evaluation.status == "done"
    assert evaluation.attempts == 3
    assert LLMCall.objects.filter(turn=pending_turn, success=False).count() == 2


def test_timeout_then_success(judge_server, judge_settings, pending_turn):
    # Generous numbers: the second, prompt answer must beat the timeout on a busy machine.
    judge_settings.OPENAI_TIMEOUT_SECONDS = 1.5
    judge_server.script_chat(ScriptedResponse(content=judgment(), delay=5), ScriptedResponse(content=judgment()))

    evaluation = run(pending_turn)

    assert evaluation.status == "done"
    assert evaluation.attempts == 2
    assert "timed out" in LLMCall.objects.get(turn=pending_turn, success=False).error


def test_401_fails_at_once(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(status=401, body={"error": {"message": "Incorrect API key provided"}}))

    evaluation = run(pending_turn)

    assert evaluation.status == "failed"
    assert evaluation.attempts == 1
    assert "HTTP 401" in evaluation.error and "Incorrect API key" in evaluation.error
    assert pending_turn.judge_status == "failed"
    assert len(judge_server.requests_to("/chat/completions")) == 1


def test_bad_request_is_permanent(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(status=400, body={"error": {"message": "model gpt-x does not exist"}}))

    evaluation = run(pending_turn)

    assert evaluation.status == "failed"
    assert len(judge_server.requests_to("/chat/completions")) == 1


def test_transient_errors_give_up_after_max_attempts(judge_server, judge_settings, pending_turn):
    judge_settings.JUDGE_MAX_ATTEMPTS = 3
    judge_server.script_chat(*[ScriptedResponse(status=502)] * 5)

    evaluation = run(pending_turn)

    assert evaluation.status == "failed"
    assert evaluation.attempts == 3
    assert evaluation.error.startswith("gave up after 3 attempts: HTTP 502")
    assert len(judge_server.requests_to("/chat/completions")) == 3
    assert pending_turn.judge_status == "failed"


def test_connection_refused_is_retried_then_fails(judge_settings, pending_turn):
    with OpenAIServer() as server:
        base_url = server.base_url  # closed once we leave the block: nothing listens there
    judge_settings.OPENAI_BASE_URL = base_url
    judge_settings.JUDGE_MAX_ATTEMPTS = 2

    evaluation = run(pending_turn)

    assert evaluation.status == "failed"
    assert evaluation.attempts == 2
    assert "connection error" in evaluation.error


def test_server_without_json_schema_falls_back_to_json_mode(judge_settings, chatbot):
    conversation = make_conversation(chatbot)
    first = make_turn(conversation, judge_status="pending")
    second = make_turn(conversation, judge_status="pending")
    with OpenAIServer(reject_json_schema=True) as server:
        judge_settings.OPENAI_BASE_URL = server.base_url
        assert run(first).status == "done"
        assert run(second).status == "done"
        formats = [r["json"]["response_format"]["type"] for r in server.requests_to("/chat/completions")]
    # The rejection is remembered: the second turn goes straight to JSON mode.
    assert formats == ["json_schema", "json_object", "json_object"]
    assert Evaluation.objects.get(turn=first).attempts == 1


def test_judge_calls_recorded_with_tokens_and_cost(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(content=judgment()))

    evaluation = run(pending_turn)

    call = evaluation.llm_call
    assert call.purpose == "judge"
    assert (call.chatbot_id, call.conversation_id, call.turn_id) == (
        pending_turn.chatbot_id, pending_turn.conversation_id, pending_turn.pk,
    )
    assert call.model == "gpt-4o-mini"
    request = judge_server.requests_to("/chat/completions")[0]["json"]
    # The local server counts words as tokens.
    assert call.input_tokens == sum(len(m["content"].split()) for m in request["messages"])
    assert call.output_tokens == len(judgment().split())
    # gpt-4o-mini list price: $0.15 / $0.60 per 1M tokens.
    expected = (Decimal(call.input_tokens) * Decimal("0.15") + Decimal(call.output_tokens) * Decimal("0.60")) / 10**6
    assert call.cost_usd == expected.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    assert call.cost_usd > 0
    assert call.duration_ms is not None
    assert call.output_text == judgment()


def test_running_the_task_twice_judges_once(judge_server, pending_turn):
    judge_server.script_chat(ScriptedResponse(content=judgment()), ScriptedResponse(content=judgment(relevance=1)))

    assert turn_judge.delay(pending_turn.pk).get() == "done"
    assert turn_judge.delay(pending_turn.pk).get() == "already_done"

    assert Evaluation.objects.filter(turn=pending_turn).count() == 1
    assert Evaluation.objects.get(turn=pending_turn).relevance == 9
    assert len(judge_server.requests_to("/chat/completions")) == 1


def test_evaluation_held_by_another_worker_is_left_alone(judge_server, chatbot, pending_turn):
    Evaluation.objects.create(
        turn=pending_turn, chatbot=chatbot, evaluator="llm_judge", evaluator_version="judge-v1:gpt-4o-mini",
        attempts=1, claimed_until=timezone.now() + timedelta(minutes=2),
    )

    assert turn_judge.delay(pending_turn.pk).get() == "claimed_elsewhere"
    assert judge_server.requests_to("/chat/completions") == []

    # The holder died: once its claim runs out, the next delivery takes over.
    Evaluation.objects.filter(turn=pending_turn).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert turn_judge.delay(pending_turn.pk).get() == "done"
    assert Evaluation.objects.get(turn=pending_turn).attempts == 2


def test_turn_not_sampled_is_not_judged(judge_server, chatbot):
    turn = make_turn(make_conversation(chatbot))  # judge_status "" = not sampled

    assert turn_judge.delay(turn.pk).get() == "not_sampled"
    assert not Evaluation.objects.exists()
    assert turn_judge.delay(999_999).get() == "missing"


def test_judge_switched_off_after_sampling(judge_server, chatbot, pending_turn):
    chatbot.judge_enabled = False
    chatbot.save()

    assert turn_judge.delay(pending_turn.pk).get() == "judge_disabled"
    pending_turn.refresh_from_db()
    assert pending_turn.judge_status == ""
    assert judge_server.requests_to("/chat/completions") == []
