"""The payloads the seed documents teach, posted exactly as printed, lose nothing.

The monitoring tutorial's per-turn payload (snake_case) and its ChatMetric emissions
(camelCase, `logChatMetric({...})`, JSON.stringify dropping `rating: undefined`); the
chat-logging design's message columns with its sql_queries.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, Step, Turn
from apps.feedback.models import Feedback
from apps.privacy.hashing import end_user_hash
from apps.scores.models import Score

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/turns"

# 000 (the seed tutorial), "the interaction payload in each turn", as printed.
TUTORIAL_TURN = {
    "timestamp": "2025-05-24T12:00:00Z",
    "user_id": "abc123",
    "user_message": "Do you integrate with Zapier?",
    "bot_response": "Yes, our API can be connected to Zapier using Webhooks.",
    "source": "website_chat",
    "latency_ms": 1400,
    "fallback_used": False,
    "error": None,
}
# Its "Example Metric Emissions Per Turn" (timestamp: new Date().toISOString()).
CHAT_METRIC_TURN = {
    "timestamp": "2025-05-24T12:00:00.000Z",
    "userId": "abc123",
    "sessionId": "sess789",
    "userMessage": "How do I reset my password?",
    "botResponse": 'Click on "Forgot Password" at login screen.',
    "source": "website",
    "latencyMs": 920,
    "fallbackUsed": False,
    "hallucinated": False,
    "event": "turn",
}
# Its LangChainLogger.onChainError emission.
CHAT_METRIC_ERROR = {
    "timestamp": "2025-05-24T12:00:05.000Z", "userId": "unknown", "sessionId": "unknown", "userMessage": "",
    "botResponse": "", "source": "website", "latencyMs": 0, "fallbackUsed": True, "hallucinated": False,
    "error": "Request timed out", "event": "error",
}


def test_the_tutorial_turn_payload_is_stored_in_a_session(post_json, chatbot):
    response = post_json(URL, TUTORIAL_TURN)
    assert response.status_code == 201, response.json()
    assert "warnings" not in response.json()
    turn = Turn.objects.get(pk=response.json()["id"])
    assert (turn.user_message, turn.bot_response) == (TUTORIAL_TURN["user_message"], TUTORIAL_TURN["bot_response"])
    assert (turn.latency_ms, turn.fallback_used, turn.has_error) == (1400, False, False)
    assert turn.timestamp.isoformat() == "2025-05-24T12:00:00+00:00"
    conversation = turn.conversation
    assert conversation.channel == "website_chat"
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="abc123")
    assert conversation.external_id.startswith("session-")


def test_the_chat_metric_turn_is_stored_with_every_field(post_json, chatbot):
    response = post_json(URL, CHAT_METRIC_TURN)
    assert response.status_code == 201, response.json()
    assert "warnings" not in response.json()
    turn = Turn.objects.get(pk=response.json()["id"])
    assert turn.conversation.external_id == "sess789"
    assert turn.conversation.channel == "website"
    assert (turn.user_message, turn.bot_response, turn.latency_ms, turn.fallback_used) == (
        "How do I reset my password?", 'Click on "Forgot Password" at login screen.', 920, False)
    assert turn.conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="abc123")
    score = Score.objects.get(turn=turn)
    assert (score.name, score.data_type, score.value, score.source) == ("hallucinated", "boolean", 0.0, "bot")
    assert not turn.is_flagged


def test_the_chat_metric_lifecycle_start_error_feedback_end(post_json):
    start = {**CHAT_METRIC_TURN, "event": "start", "botResponse": "", "latencyMs": 0}
    response = post_json(URL, start)
    assert response.status_code == 200
    assert response.json() == {"event": "start", "conversation": "sess789", "turn_id": None, "ended_at": None}
    assert Turn.objects.count() == 0 and Conversation.objects.filter(external_id="sess789").exists()

    post_json(URL, CHAT_METRIC_TURN)
    error = post_json(URL, {**CHAT_METRIC_ERROR, "sessionId": "sess789"})
    assert error.status_code == 201
    errored = Turn.objects.get(pk=error.json()["id"])
    assert errored.has_error and errored.error == "Request timed out" and errored.fallback_used
    assert Conversation.objects.get(external_id="sess789").error_count == 1

    feedback = post_json(URL, {**CHAT_METRIC_TURN, "event": "feedback", "rating": "down"})
    assert feedback.status_code == 200 and feedback.json()["turn_id"] is None
    vote = Feedback.objects.get()
    assert (vote.turn_id, vote.rating, vote.source) == (errored.pk, "down", "api")

    end = post_json(URL, {**CHAT_METRIC_TURN, "event": "end", "timestamp": "2025-05-24T12:10:00Z", "outcome": "resolved"})
    assert end.status_code == 200 and end.json()["ended_at"] == "2025-05-24T12:10:00Z"
    conversation = Conversation.objects.get(external_id="sess789")
    assert conversation.turn_count == 2 and conversation.thumbs_down == 1
    outcome = Score.objects.get(name="resolved")
    assert (outcome.turn_id, outcome.value) == (None, 1.0)


def test_hallucinated_true_flags_the_turn_and_an_inline_rating_is_feedback(post_json):
    response = post_json(URL, {**CHAT_METRIC_TURN, "hallucinated": True, "rating": "up"})
    body = response.json()
    assert body["is_flagged"] and body["flag_reasons"] == ["hallucination"]
    turn = Turn.objects.get(pk=body["id"])
    assert turn.thumbs_up == 1 and Feedback.objects.get().source == "api"
    assert Score.objects.get(turn=turn).value == 1.0


def test_unknown_fields_are_kept_under_metadata_and_listed_in_warnings(post_json, settings):
    response = post_json(URL, {**TUTORIAL_TURN, "plan": "pro", "metadata": {"plan": "mine", "locale": "en"},
                               "page": "/pricing", "channel": "web"})
    body = response.json()
    assert sorted(body["warnings"]) == [
        "page: unknown field, kept as metadata.page",
        "plan: unknown field, not stored (metadata.plan was given)",
        "source: ignored, channel was given",
    ]
    turn = Turn.objects.get(pk=body["id"])
    assert turn.metadata == {"plan": "mine", "locale": "en", "page": "/pricing"}
    assert turn.conversation.channel == "web"

    settings.INGEST_MAX_METADATA_BYTES = 50
    body = post_json(URL, {**TUTORIAL_TURN, "notes": "x" * 100}).json()
    assert body["warnings"] == ["notes: unknown field, not stored (metadata would exceed 50 bytes)"]
    assert Turn.objects.get(pk=body["id"]).metadata == {}


def test_a_turn_without_any_conversation_id_needs_a_user_id(post_json):
    response = post_json(URL, {"user_message": "hi"})
    assert response.status_code == 400
    assert "user_id" in response.json()["conversation_id"][0]


def _at(minutes: float) -> str:
    return (timezone.now() - timedelta(hours=4) + timedelta(minutes=minutes)).isoformat()


def test_sessions_follow_the_inactivity_gap_per_user_and_channel(post_json, chatbot):
    def conversation_of(**fields):
        body = post_json(URL, {"user_id": "u1", "user_message": "hi", "channel": "website", **fields}).json()
        return Turn.objects.get(pk=body["id"]).conversation_id

    first = conversation_of(timestamp=_at(0))
    assert conversation_of(timestamp=_at(29)) == first
    assert conversation_of(timestamp=_at(20)) == first  # late, within the session
    assert conversation_of(timestamp=_at(29), channel="whatsapp") != first
    assert conversation_of(timestamp=_at(29), user_id="u2") != first
    later = conversation_of(timestamp=_at(60))  # 31 minutes after the last activity
    assert later != first
    chatbot.session_gap_minutes = 90
    chatbot.save(update_fields=["session_gap_minutes"])
    assert conversation_of(timestamp=_at(140)) == later
    # `end` closes the session: the next turn opens a new one.
    external_id = Conversation.objects.get(pk=later).external_id
    post_json(URL, {"conversation_id": external_id, "event": "end", "user_id": "u1"})
    assert conversation_of(timestamp=_at(141)) != later
    assert Conversation.objects.get(pk=first).turn_count == 3


def test_a_batch_of_one_users_turns_lands_in_one_session(post_json):
    turns = [{"user_id": "u1", "user_message": f"m{i}", "timestamp": _at(i * 5)} for i in (3, 0, 1, 2)]
    response = post_json(URL, {"turns": turns})
    assert {r["status"] for r in response.json()["results"]} == {201}
    assert Conversation.objects.count() == 1
    assert list(Turn.objects.order_by("timestamp").values_list("user_message", flat=True)) == ["m0", "m1", "m2", "m3"]


# 004 (the chat-logging design): a chatbot_conversation_messages row, its columns as keys.
CHAT_LOGGING_MESSAGE = {
    "message_id": "msg-1",
    "conversation_id": "conv-orders-1",
    "user_input": "Show me recent orders",
    "final_output": '{"type": "orders_summary", "orders": [1, 2, 3, 4, 5]}',
    "conversation_message": "I found 5 recent orders for you...",
    "intent": "orders",
    "classification": "database_query",
    "database_used": "orders_db",
    "sql_queries": ["SELECT * FROM orders WHERE customer_id = 42 ORDER BY created_at DESC LIMIT 5"],
    "sql_results_count": 5,
    "total_llm_calls": 2,
    "total_tokens_used": 812,
    "total_cost": 0.0042,
    "total_duration_ms": 1840,
    "success": True,
    "error_message": None,
    "debug_info": {"router": "sql_agent", "retries": 0},
}


def test_the_chat_logging_message_with_sql_queries_is_stored(post_json):
    response = post_json(URL, CHAT_LOGGING_MESSAGE)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["turn_id"] == "msg-1"
    assert sorted(body["warnings"]) == sorted(
        f"{key}: unknown field, kept as metadata.{key}"
        for key in ("total_llm_calls", "total_tokens_used", "total_cost", "success"))
    turn = Turn.objects.get(pk=body["id"])
    assert (turn.user_message, turn.bot_response) == ("Show me recent orders", CHAT_LOGGING_MESSAGE["final_output"])
    assert (turn.intent, turn.classification, turn.database_used) == ("orders", "database_query", "orders_db")
    assert turn.conversation_message == "I found 5 recent orders for you..."
    assert turn.debug_info == {"router": "sql_agent", "retries": 0}
    assert turn.latency_ms == 1840 and not turn.has_error
    assert turn.metadata == {"total_llm_calls": 2, "total_tokens_used": 812, "total_cost": 0.0042, "success": True}
    step = Step.objects.get()
    assert (step.turn_id, step.kind, step.rows, step.success) == (turn.pk, "sql", 5, True)
    assert step.input_text == CHAT_LOGGING_MESSAGE["sql_queries"][0]
    assert step.shape == "select * from orders where customer_id = ? order by created_at desc limit ?"


def test_steps_are_stored_in_bulk_and_redacted(post_json, django_assert_max_num_queries):
    steps = [{"kind": "tool", "name": "lookup_customer", "input": {"email": "jane@example.com"}, "duration_ms": 30},
             {"kind": "sql", "input": "SELECT 1", "success": False, "error": "timeout", "durationMs": 900},
             {"kind": "retrieval", "name": "faq", "rows": 3, "metadata": {"note": "call 555-123-4567"}}]
    turns = [{"conversation_id": "c1", "turn_id": f"t{i}", "user_message": "hi", "steps": steps} for i in range(20)]
    with django_assert_max_num_queries(40):
        response = post_json(URL, {"turns": turns})
    assert {r["status"] for r in response.json()["results"]} == {201}
    assert Step.objects.count() == 60
    tool = Step.objects.filter(kind="tool").first()
    assert "jane@example.com" not in tool.input_text
    assert Step.objects.filter(kind="sql", success=False, duration_ms=900).count() == 20
    assert "555-123-4567" not in str(Step.objects.filter(kind="retrieval").first().metadata)


def test_bad_steps_are_a_400_naming_the_item(post_json):
    response = post_json(URL, {"conversation_id": "c", "user_message": "hi", "steps": [{"kind": "teleport"}]})
    assert response.status_code == 400
    assert response.json() == {"steps": {"0": {"kind": ["Must be one of: sql, tool, retrieval, http, other."]}}}
