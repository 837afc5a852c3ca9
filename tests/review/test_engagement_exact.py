"""The engagement panel's summary-backed figures (`selectors.engagement`: the latest turn's
signals on the conversation, a semi-join for returning end users) equal the straightforward live
computation from the turns (`selectors.engagement_live`) on random data built through the real
paths: turn and LLM-call ingest over the bot API, votes cast, changed and withdrawn through the
feedback service, and an end user's erasure that recomputes summaries of shared conversations."""

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, Turn
from apps.feedback.models import Feedback
from apps.feedback.services import feedback_delete, feedback_submit
from apps.privacy.services import end_user_erase
from apps.review.selectors import Window, engagement, engagement_live

pytestmark = pytest.mark.django_db

USERS = ["ana", "ben", "cy", "dee", "eli", "fay"]


def _post(client, path: str, body: dict) -> dict:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 201, 207), response.content
    return response.json()


def _random_history(rng: random.Random, bot_clients: list, now) -> None:
    """Conversations over the last 10 days: random lengths, end users (some absent, some shared
    between conversations and chatbots), fallbacks and errors, turns sharing a timestamp, and a
    bot LLM call after the last turn now and then (the conversation then ends on no turn)."""
    for index in range(40):
        client = rng.choice(bot_clients)
        start = now - timedelta(hours=rng.uniform(0, 240))
        user = rng.choice([*USERS, None])
        turns = []
        moment = start
        for sequence in range(rng.randint(1, 12)):
            if sequence and rng.random() > 0.15:  # sometimes two turns at the same moment
                moment += timedelta(minutes=rng.randint(1, 30))
            turn = {"conversation_id": f"c{index}", "turn_id": f"c{index}-t{sequence}", "user_message": "hello",
                    "bot_response": "hi", "timestamp": moment.isoformat(), "fallback_used": rng.random() < 0.25}
            # Now and then another end user's turn joins (a shared device, a handover), so
            # erasing one end user leaves the conversation with the others' turns.
            speaker = rng.choice(USERS) if rng.random() < 0.3 else user
            if speaker:
                turn["user_id"] = speaker
            if rng.random() < 0.2:
                turn["error"] = "upstream timeout"
            turns.append(turn)
        rng.shuffle(turns)  # out of order: a later batch may hold an earlier turn
        cut = rng.randint(1, len(turns))
        for part in (turns[:cut], turns[cut:]):
            if part:
                _post(client, "/api/v1/ingest/turns", {"turns": part})
        if rng.random() < 0.2:
            _post(client, "/api/v1/ingest/llm-calls", {
                "conversation_id": f"c{index}", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 5,
                "timestamp": (moment + timedelta(minutes=5)).isoformat()})


def _random_votes(rng: random.Random) -> None:
    turns = list(Turn.objects.order_by("id"))
    for turn in rng.sample(turns, k=len(turns) // 3):
        for voter in rng.sample(["v1", "v2"], k=rng.randint(1, 2)):
            feedback_submit(turn_id=turn.pk, voter_key=voter, rating=rng.choice(["up", "down"]))
    for feedback in rng.sample(list(Feedback.objects.order_by("id")), k=Feedback.objects.count() // 4):
        if rng.random() < 0.5:
            feedback_submit(turn_id=feedback.turn_id, voter_key=feedback.voter_key,
                            rating="up" if feedback.rating == "down" else "down")
        else:
            feedback_delete(feedback_id=feedback.pk)


def _windows(now) -> list[Window]:
    return [Window.last(hours, now=now) for hours in (6, 24, 72, 240)] + [
        Window(since=now - timedelta(days=6), until=now - timedelta(days=2), hours=96)]


def _assert_same(chatbot_ids, now) -> None:
    for window in _windows(now):
        assert engagement(chatbot_ids=chatbot_ids, window=window) == engagement_live(chatbot_ids=chatbot_ids, window=window)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summary_backed_engagement_equals_the_live_computation(seed, chatbot, other_chatbot, api_key, other_api_key):
    from django.test import Client

    rng = random.Random(seed)
    now = timezone.now()
    clients = [Client(HTTP_AUTHORIZATION=f"Bearer {key}") for key in (api_key, other_api_key)]
    _random_history(rng, clients, now)
    _random_votes(rng)
    scopes = [None, [chatbot.pk], [other_chatbot.pk]]
    for scope in scopes:
        _assert_same(scope, now)

    # Erasing one end user deletes their turns from conversations others keep alive: the
    # summaries are recomputed from what is left, and the figures still agree.
    before = Turn.objects.count()
    for user in rng.sample(USERS, k=2):
        end_user_erase(chatbot=chatbot, user_id=user)
        end_user_erase(chatbot=other_chatbot, user_id=user)
    assert 0 < Turn.objects.count() < before
    for scope in scopes:
        _assert_same(scope, now)


def test_the_data_exercises_every_drop_off_signal(chatbot, other_chatbot, api_key, other_api_key):
    """Guards the comparison above against data where every figure is zero."""
    from django.test import Client

    rng = random.Random(1)
    now = timezone.now()
    clients = [Client(HTTP_AUTHORIZATION=f"Bearer {key}") for key in (api_key, other_api_key)]
    _random_history(rng, clients, now)
    _random_votes(rng)
    figures = engagement(chatbot_ids=None, window=Window.last(240, now=now))
    drop = figures["drop_off"]
    assert 0 < drop["conversations"] < figures["conversations"]  # some end on an LLM call
    assert all(drop[key]["conversations"] > 0 for key in ("after_fallback", "after_error", "after_thumbs_down"))
    recent = engagement(chatbot_ids=None, window=Window.last(72, now=now))
    assert 0 < recent["returning_end_users"] <= recent["end_users"]
    assert Conversation.objects.filter(last_turn_at__isnull=False).count() == Conversation.objects.count()


def test_a_withdrawn_thumbs_down_on_the_last_turn_leaves_the_drop_off(chatbot, post_json):
    now = timezone.now()
    turns = [{"conversation_id": "c1", "turn_id": f"t{i}", "user_message": "hi", "bot_response": "hello",
              "timestamp": (now - timedelta(minutes=3 - i)).isoformat()} for i in range(3)]
    assert post_json("/api/v1/ingest/turns", {"turns": turns}).status_code in (200, 201, 207)
    last = Turn.objects.get(external_id="t2")
    first = Turn.objects.get(external_id="t0")
    window = Window.last(1, now=now + timedelta(seconds=1))

    feedback_submit(turn_id=first.pk, voter_key="v", rating="down")  # not the last turn
    assert engagement(chatbot_ids=None, window=window)["drop_off"]["after_thumbs_down"]["conversations"] == 0
    result = feedback_submit(turn_id=last.pk, voter_key="v", rating="down")
    assert engagement(chatbot_ids=None, window=window)["drop_off"]["after_thumbs_down"]["conversations"] == 1
    feedback_submit(turn_id=last.pk, voter_key="v", rating="up")
    assert engagement(chatbot_ids=None, window=window)["drop_off"]["after_thumbs_down"]["conversations"] == 0
    feedback_submit(turn_id=last.pk, voter_key="v", rating="down")
    feedback_delete(feedback_id=result.feedback.pk)
    assert engagement(chatbot_ids=None, window=window)["drop_off"]["after_thumbs_down"]["conversations"] == 0
    assert engagement(chatbot_ids=None, window=window) == engagement_live(chatbot_ids=None, window=window)
