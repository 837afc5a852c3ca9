from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Step, Turn
from apps.scores.models import Score, ScoreDefinition

pytestmark = pytest.mark.django_db
TURNS = "/api/v1/ingest/turns"
SCORES = "/api/v1/scores"


@pytest.fixture
def conversation(post_json):
    post_json(TURNS, {"conversation_id": "conv-1", "turn_id": "t1", "user_message": "hi", "bot_response": "hello"})
    return Turn.objects.get().conversation


def test_a_score_is_stored_once_by_score_id(post_json, conversation):
    body = {"score_id": "s1", "conversation_id": "conv-1", "turn_id": "t1", "name": "accuracy", "value": 0.8,
            "comment": "mostly right", "source": "ragas"}
    first, replay = post_json(SCORES, body), post_json(SCORES, {**body, "value": 0.1})
    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json() == replay.json()
    assert first.json()["value"] == 0.8 and first.json()["turn_id"] == "t1"
    score = Score.objects.get()
    assert (score.turn.external_id, score.source, score.comment, score.data_type) == ("t1", "ragas", "mostly right", "numeric")


def test_a_batch_answers_per_item(post_json, conversation):
    response = post_json(SCORES, {"scores": [
        {"conversation_id": "conv-1", "name": "on_topic", "value": True},
        {"conversation_id": "nope", "name": "x", "value": 1},
        {"conversation_id": "conv-1", "turn_id": "t9", "name": "x", "value": 1},
        {"conversation_id": "conv-1", "name": "csat", "value": 6},
        {"conversation_id": "conv-1", "name": "tier", "value": "gold"},
        {"score_id": "d", "conversation_id": "conv-1", "name": "x", "value": 2},
        {"score_id": "d", "conversation_id": "conv-1", "name": "x", "value": 3},
    ]})
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 400, 400, 201, 201, 200]
    assert results[1]["errors"] == {"conversation_id": ["No such conversation for this chatbot."]}
    assert results[3]["errors"] == {"value": ["Must be between 1 and 5."]}
    assert results[5]["id"] == results[6]["id"]
    assert Score.objects.count() == 3


def test_score_definitions_validate_their_names(post_json, conversation, chatbot):
    ScoreDefinition.objects.create(chatbot=chatbot, name="helpfulness", data_type="numeric", min_value=0, max_value=1)
    ScoreDefinition.objects.create(chatbot=chatbot, name="lead_quality", data_type="categorical",
                                   categories=["hot", "warm", "cold"])
    assert post_json(SCORES, {"conversation_id": "conv-1", "name": "helpfulness", "value": 1.5}).json() == {
        "value": ["Must be between 0 and 1."]}
    assert post_json(SCORES, {"conversation_id": "conv-1", "name": "helpfulness", "value": "good"}).status_code == 400
    assert post_json(SCORES, {"conversation_id": "conv-1", "name": "helpfulness", "value": 0.5}).status_code == 201
    assert post_json(SCORES, {"conversation_id": "conv-1", "name": "lead_quality", "value": "lukewarm"}).status_code == 400
    assert post_json(SCORES, {"conversation_id": "conv-1", "name": "lead_quality", "value": "hot"}).status_code == 201


def test_another_chatbots_conversation_is_unknown(client, other_api_key, conversation):
    response = client.post(SCORES, {"conversation_id": "conv-1", "name": "x", "value": 1}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {other_api_key}")
    assert response.status_code == 400


def test_outcomes_arrive_later_and_the_latest_wins(post_json, conversation):
    url = "/api/v1/conversations/conv-1/outcomes"
    response = post_json(url, {"converted": False, "handed_off": True, "handoff_reason": "asked for a human", "csat": 2})
    assert response.status_code == 200
    assert response.json() == {"conversation": "conv-1", "outcomes": {"converted": False, "handed_off": True, "csat": 2}}
    post_json(url, {"converted": True, "nps": 9, "lead_quality": "hot"})
    scores = {s.name: s for s in Score.objects.filter(conversation=conversation)}
    assert {n: s.display_value for n, s in scores.items()} == {
        "converted": "yes", "handed_off": "yes", "csat": "2", "nps": "9", "lead_quality": "hot"}
    assert scores["handed_off"].comment == "asked for a human"
    assert post_json(url, {"nps": 11}).json() == {"nps": ["Must be between 0 and 10."]}
    assert post_json(url, {"revenue": 10}).status_code == 400
    assert post_json("/api/v1/conversations/nope/outcomes", {"converted": True}).status_code == 404


def test_a_turn_can_say_it_was_handed_off(post_json):
    post_json(TURNS, {"conversation_id": "c", "user_message": "a human please", "handoff": True,
                      "handoffReason": "asked for a human"})
    score = Score.objects.get()
    assert (score.name, score.value, score.comment, score.turn_id is not None) == ("handed_off", 1.0, "asked for a human", True)


def test_staff_list_filters_and_is_scoped(client, post_json, conversation, bob, charlie):
    post_json(SCORES, {"scores": [{"conversation_id": "conv-1", "name": "csat", "value": v} for v in (1, 2, 5)]})
    client.force_login(bob)
    body = client.get("/api/v1/scores/", {"name": "csat", "value_max": 2}).json()
    assert sorted(r["value"] for r in body["results"]) == [1.0, 2.0]
    client.force_login(charlie)
    assert client.get("/api/v1/scores/").json()["results"] == []


def test_the_transcript_shows_steps_scores_and_outcomes(admin_client, post_json):
    post_json(TURNS, {"conversation_id": "c", "user_message": "orders?", "hallucinated": True,
                      "classification": "database_query", "database_used": "orders_db",
                      "sql_queries": [{"query": "SELECT * FROM orders WHERE id = 5", "results_count": 1}]})
    turn = Turn.objects.get()
    post_json("/api/v1/conversations/c/outcomes", {"resolved": True})
    page = admin_client.get(f"/admin/conversations/conversation/{turn.conversation_id}/change/")
    html = page.content.decode()
    assert "SELECT * FROM orders WHERE id = 5" in html and "1 row" in html
    assert "hallucinated yes" in html and "resolved yes" in html
    assert "Database: <strong>orders_db</strong>" in html and "Classification: <strong>database_query</strong>" in html
    assert admin_client.get("/admin/conversations/step/").status_code == 200


def test_steps_analysis_matches_hand_computed_values(admin_client, post_json, chatbot):
    now = timezone.now()
    queries = [  # (sql, duration, success)
        ("SELECT * FROM orders WHERE id = 1", 10, True),
        ("SELECT * FROM orders WHERE id = 2", 30, True),
        ("select *  from orders where id=3", 50, False),
        ("SELECT name FROM customers WHERE email = 'a@b.c'", 200, False),
        ("SELECT name FROM customers WHERE email = 'x@y.z'", 100, True),
    ]
    post_json(TURNS, {"conversation_id": "c", "user_message": "q", "timestamp": (now - timedelta(minutes=5)).isoformat(),
                      "steps": [{"kind": "sql", "input": q, "duration_ms": d, "success": ok} for q, d, ok in queries]
                      + [{"kind": "tool", "name": "search", "duration_ms": 999}]})
    old = Turn.objects.get()
    Step.objects.create(chatbot=chatbot, conversation=old.conversation, turn=old, kind="sql", input_text="SELECT 1",
                        duration_ms=5000, timestamp=now - timedelta(hours=30))  # outside the window
    body = admin_client.get("/api/v1/stats/steps", {"hours": 24, "kind": "sql"}).json()
    # durations 10, 30, 50, 100, 200: p50 = 50; p95 rank 0.95·4 = 3.8 → 100 + 0.8·(200−100) = 180.
    assert (body["count"], body["errors"], body["error_rate"]) == (5, 2, 0.4)
    assert body["duration_ms"] == {"p50": 50.0, "p95": 180.0}
    orders = "select * from orders where id = ?"
    customers = "select name from customers where email = ?"
    assert [(g["query"], g["count"], g["avg_duration_ms"]) for g in body["slowest"]] == [(customers, 2, 150.0), (orders, 3, 30.0)]
    assert [(g["query"], g["errors"], g["error_rate"]) for g in body["most_failing"]] == [(orders, 1, 0.3333), (customers, 1, 0.5)]
    assert admin_client.get("/api/v1/stats/steps", {"hours": 24}).json()["count"] == 6
