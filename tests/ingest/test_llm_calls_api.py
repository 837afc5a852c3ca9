from decimal import Decimal

import pytest

from apps.conversations.models import Conversation, LLMCall, Turn

pytestmark = pytest.mark.django_db
CALLS = "/api/v1/ingest/llm-calls"
TURNS = "/api/v1/ingest/turns"


def test_single_call_links_to_its_turn_and_grows_the_totals(post_json):
    post_json(TURNS, {"conversation_id": "c", "turn_id": "t", "user_message": "Hi", "tokens": {"prompt": 5, "completion": 5}})
    response = post_json(CALLS, {"conversation_id": "c", "turn_id": "t", "call_id": "k", "model": "gpt-4o",
                                 "input_tokens": 1000, "output_tokens": 100, "function_name": "answer",
                                 "duration_ms": 800, "input": [{"role": "user", "content": "Hi"}], "output": "Hello"})
    assert response.status_code == 201
    call = LLMCall.objects.get(pk=response.json()["id"])
    turn = Turn.objects.get(external_id="t")
    assert call.turn == turn and call.function_name == "answer" and '"role": "user"' in call.input_text
    assert call.cost_usd == Decimal("0.0035")  # gpt-4o: $2.50 in, $10 out per 1M
    assert turn.total_tokens == 1110
    assert Conversation.objects.get().total_tokens == 1110


def test_call_replay_is_a_no_op(post_json):
    first = post_json(CALLS, {"conversation_id": "c", "call_id": "k", "input_tokens": 7})
    again = post_json(CALLS, {"conversation_id": "c", "call_id": "k", "input_tokens": 7})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert LLMCall.objects.count() == 1
    assert Conversation.objects.get().total_tokens == 7


def test_call_before_its_turn_is_linked_when_the_turn_arrives(post_json):
    post_json(CALLS, {"conversation_id": "c", "turn_id": "later", "call_id": "k", "input_tokens": 10, "output_tokens": 0})
    post_json(TURNS, {"conversation_id": "c", "turn_id": "later", "user_message": "Hi", "tokens": {"prompt": 1, "completion": 1}})
    turn = Turn.objects.get(external_id="later")
    assert LLMCall.objects.get().turn == turn
    assert turn.total_tokens == 12
    assert Conversation.objects.get().total_tokens == 12  # counted once


def test_a_turn_listing_its_early_call_again_stores_it_once(post_json):
    """The call went to /llm-calls first, then the turn lists it too: one call, counted once."""
    post_json(CALLS, {"conversation_id": "c", "turn_id": "t", "call_id": "k", "input_tokens": 10, "output_tokens": 0})
    response = post_json(TURNS, {"conversation_id": "c", "turn_id": "t", "user_message": "Hi",
                                 "llm_calls": [{"call_id": "k", "input_tokens": 10, "output_tokens": 0},
                                               {"call_id": "new", "input_tokens": 5, "output_tokens": 0}]})
    assert response.status_code == 201, response.content
    turn = Turn.objects.get(external_id="t")
    assert sorted(LLMCall.objects.filter(turn=turn).values_list("external_id", flat=True)) == ["k", "new"]
    assert turn.total_tokens == 15
    assert Conversation.objects.get().total_tokens == 15


def test_a_call_id_repeated_in_a_batch_of_turns_is_stored_once(post_json):
    call = {"call_id": "same", "input_tokens": 4, "output_tokens": 0}
    response = post_json(TURNS, {"turns": [
        {"conversation_id": "c", "turn_id": "a", "user_message": "Hi", "llm_calls": [call, call]},
        {"conversation_id": "c", "turn_id": "b", "user_message": "Again", "llm_calls": [call]},
    ]})
    assert response.status_code == 207, response.content
    assert [r["status"] for r in response.json()["results"]] == [201, 201]
    assert LLMCall.objects.get().turn.external_id == "a"
    assert Conversation.objects.get().total_tokens == 4
    assert list(Turn.objects.order_by("sequence").values_list("total_tokens", flat=True)) == [4, 0]


def test_batch_of_calls(post_json):
    response = post_json(CALLS, {"llm_calls": [
        {"conversation_id": "c", "call_id": "a", "input_tokens": 1},
        {"call_id": "b"},
        {"conversation_id": "c", "call_id": "a", "input_tokens": 1},
    ]})
    assert response.status_code == 207
    assert [r["status"] for r in response.json()["results"]] == [201, 400, 200]
    assert response.json()["results"][1]["errors"] == {"conversation_id": ["This field is required."]}


def test_failed_call(post_json):
    post_json(CALLS, {"conversation_id": "c", "error": "rate limited", "success": True})
    call = LLMCall.objects.get()
    assert not call.success and call.error == "rate limited"
