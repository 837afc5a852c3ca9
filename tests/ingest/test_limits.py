"""The edges of the ingest contract (issue 15 §4): what the database can store is what validation
lets through. NUL in an identifier is a 400 naming the field (PostgreSQL refuses NUL in text and
jsonb, which was a 500); NUL in free text becomes U+FFFD; every documented maximum, and the sums
of them on a turn and a conversation, fit their columns; a bad batch item is rejected alone.

The overflow and NUL cases only ever failed on PostgreSQL (SQLite stores anything), so they run
on both and matter on PostgreSQL."""

from decimal import Decimal

import pytest

from apps.conversations.models import Conversation, LLMCall, Turn
from apps.ingest.validation import MAX_CALLS_PER_TURN, MAX_COST_USD, MAX_TOKENS

pytestmark = pytest.mark.django_db
TURNS = "/api/v1/ingest/turns"
CALLS = "/api/v1/ingest/llm-calls"
GOOD_TURN = {"conversation_id": "c", "user_message": "Hi"}
GOOD_CALL = {"conversation_id": "c", "input_tokens": 1, "output_tokens": 1}


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "tab\there", "line\nbreak", "esc\x1b[2J", "c1\x85x"])
@pytest.mark.parametrize("field", ["conversation_id", "turn_id", "user_id"])
def test_control_characters_in_a_turn_identifier_are_400_naming_the_field(post_json, field, value):
    response = post_json(TURNS, {**GOOD_TURN, field: value})

    assert response.status_code == 400, response.content
    assert "control characters" in response.json()[field][0]
    assert not Turn.objects.exists()


@pytest.mark.parametrize("field", ["conversation_id", "turn_id", "call_id"])
def test_nul_in_a_call_identifier_is_400_naming_the_field(post_json, field):
    response = post_json(CALLS, {**GOOD_CALL, "turn_id": "t", field: "x\x00y"})

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not LLMCall.objects.exists()


@pytest.mark.parametrize("field", ["channel", "intent", "model"])
def test_nul_in_a_label_is_400_naming_the_field(post_json, field):
    response = post_json(TURNS, {**GOOD_TURN, field: "x\x00"})

    assert response.status_code == 400, response.content
    assert field in response.json()


def test_nul_in_free_text_and_metadata_is_stored_as_the_replacement_character(post_json):
    response = post_json(TURNS, {
        **GOOD_TURN, "user_message": "a\x00b", "bot_response": "\x00", "error": "bad\x00",
        "metadata": {"k\x00": ["v\x00", {"n": "\x00"}]},
        "llm_calls": [{"input": "in\x00", "output": [{"role": "assistant", "content": "o\x00"}],
                       "metadata": {"x": "\x00"}, "input_tokens": 1, "output_tokens": 1}],
    })

    assert response.status_code == 201, response.content
    turn = Turn.objects.get()
    assert (turn.user_message, turn.bot_response, turn.error) == ("a\ufffdb", "\ufffd", "bad\ufffd")
    assert turn.metadata == {"k\ufffd": ["v\ufffd", {"n": "\ufffd"}]}
    assert Conversation.objects.get().metadata == turn.metadata
    call = LLMCall.objects.get()
    assert call.input_text == "in\ufffd" and call.metadata == {"x": "\ufffd"}
    assert "\x00" not in call.output_text


def test_the_documented_maximum_cost_is_stored(post_json):
    turn = post_json(TURNS, {**GOOD_TURN, "cost_usd": int(MAX_COST_USD)})
    call = post_json(CALLS, {**GOOD_CALL, "cost_usd": str(MAX_COST_USD)})

    assert (turn.status_code, call.status_code) == (201, 201), (turn.content, call.content)
    assert Turn.objects.get().cost_usd == MAX_COST_USD
    assert LLMCall.objects.get().cost_usd == MAX_COST_USD
    assert Conversation.objects.get().cost_usd == 2 * MAX_COST_USD


def test_two_calls_of_600000_on_one_turn(post_json):
    response = post_json(TURNS, {**GOOD_TURN, "llm_calls": [
        {"cost_usd": 600000, "input_tokens": 1, "output_tokens": 1},
        {"cost_usd": 600000, "input_tokens": 1, "output_tokens": 1},
    ]})

    assert response.status_code == 201, response.content
    assert Turn.objects.get().total_cost_usd == Decimal("1200000")


def test_a_turn_of_the_documented_maxima_fits_and_the_conversation_keeps_taking_turns(post_json):
    """A turn at every maximum (its own cost and tokens, 100 calls at the maximum) is 101 M USD and
    2.02 G tokens: over the old numeric(14,6) conversation total and near the 32-bit token total."""
    maximal_call = {"cost_usd": int(MAX_COST_USD), "input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}
    body = {**GOOD_TURN, "cost_usd": int(MAX_COST_USD), "tokens": {"prompt": MAX_TOKENS, "completion": MAX_TOKENS},
            "llm_calls": [maximal_call] * MAX_CALLS_PER_TURN}

    first = post_json(TURNS, {**body, "turn_id": "t1"})
    second = post_json(TURNS, {**body, "turn_id": "t2"})

    assert (first.status_code, second.status_code) == (201, 201), (first.content[:300], second.content[:300])
    per_turn_cost = MAX_COST_USD * (MAX_CALLS_PER_TURN + 1)
    per_turn_tokens = 2 * MAX_TOKENS * (MAX_CALLS_PER_TURN + 1)
    conversation = Conversation.objects.get()
    assert conversation.cost_usd == 2 * per_turn_cost
    assert conversation.total_tokens == 2 * per_turn_tokens
    assert Turn.objects.get(external_id="t1").total_tokens == per_turn_tokens


def test_standalone_calls_past_32_bit_tokens_on_one_turn_and_the_next_call_still_lands(post_json):
    post_json(TURNS, {**GOOD_TURN, "turn_id": "t", "tokens": {"prompt": 0, "completion": 0}})
    big = {"conversation_id": "c", "turn_id": "t", "input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}

    response = post_json(CALLS, {"llm_calls": [{**big, "call_id": f"k{i}"} for i in range(108)]})
    later = post_json(CALLS, {**big, "call_id": "later"})

    assert response.status_code == 207, response.content[:300]
    assert {r["status"] for r in response.json()["results"]} == {201}
    assert later.status_code == 201, later.content
    assert Turn.objects.get().total_tokens == 109 * 2 * MAX_TOKENS > 2**31


def test_one_bad_item_in_a_batch_is_a_400_inside_the_207_and_the_others_are_stored(post_json):
    items = [{**GOOD_TURN, "turn_id": f"t{i}"} for i in range(51)]
    items[17]["turn_id"] = "bad\x00id"

    response = post_json(TURNS, {"turns": items})

    assert response.status_code == 207, response.content[:300]
    results = response.json()["results"]
    assert results[17]["status"] == 400 and "turn_id" in results[17]["errors"]
    assert [r["status"] for i, r in enumerate(results) if i != 17] == [201] * 50
    assert Turn.objects.count() == 50


def test_one_bad_call_in_a_batch_is_rejected_alone(post_json):
    items = [{**GOOD_CALL, "call_id": f"k{i}"} for i in range(5)]
    items[2]["conversation_id"] = "\x00"

    response = post_json(CALLS, {"llm_calls": items})

    assert response.status_code == 207
    assert [r["status"] for r in response.json()["results"]] == [201, 201, 400, 201, 201]
    assert LLMCall.objects.count() == 4


def test_the_hourly_rollup_sums_maximal_turns(post_json):
    from apps.review.models import HourlyTurnStats
    from apps.review.rollup import hourly_stats_refresh

    maximal_call = {"cost_usd": int(MAX_COST_USD), "input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}
    for i in range(2):
        post_json(TURNS, {**GOOD_TURN, "conversation_id": f"c{i}", "timestamp": "2025-01-01T10:00:00Z",
                          "llm_calls": [maximal_call] * MAX_CALLS_PER_TURN})

    hourly_stats_refresh()

    stats = HourlyTurnStats.objects.get()
    assert stats.cost == 2 * MAX_CALLS_PER_TURN * MAX_COST_USD
    assert stats.tokens == 2 * MAX_CALLS_PER_TURN * 2 * MAX_TOKENS
