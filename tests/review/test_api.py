"""Staff API lists, filters, the conversation in full, pagination and the OpenAPI schema."""

import pytest

pytestmark = pytest.mark.django_db


def external_ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["external_id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"is_flagged": "true"}, {"conv-a", "conv-d"}),
        ({"risk_level": "critical"}, {"conv-a", "conv-d"}),
        ({"risk_level": ["high", "critical"]}, {"conv-a", "conv-b", "conv-d"}),
        ({"flag_reason": "judge"}, {"conv-d"}),
        ({"rating": "down"}, {"conv-a"}),
        ({"judge_max": 3}, {"conv-a"}),
        ({"review_status": "new", "is_flagged": "true"}, {"conv-a", "conv-d"}),
        ({"search": "conv-b"}, {"conv-b"}),
        ({"search": "helpline"}, {"conv-a"}),
        ({"unassigned": "true", "is_flagged": "false"}, {"conv-b", "conv-c"}),
    ],
)
def test_conversation_filters(admin_client, dataset, query, expected):
    assert external_ids(admin_client.get("/api/v1/conversations/", query)) == expected


def test_conversation_filter_by_time_and_chatbot(admin_client, dataset, chatbot):
    since = dataset.flagged.last_activity_at.isoformat()
    response = admin_client.get("/api/v1/conversations/", {"chatbot": chatbot.pk, "last_activity_after": since})
    assert external_ids(response) == {"conv-a", "conv-b"}


@pytest.mark.parametrize("query", [{"risk_level": "extreme"}, {"chatbot": "x"}, {"last_activity_after": "yesterday"},
                                   {"judge_min": "high"}, {"review_status": "gone"}])
def test_bad_filters_are_400(admin_client, dataset, query):
    response = admin_client.get("/api/v1/conversations/", query)
    assert response.status_code == 400
    assert set(query) <= set(response.json())


@pytest.mark.parametrize("path", ["/api/v1/conversations/", "/api/v1/turns/", "/api/v1/evaluations/",
                                  "/api/v1/feedback-items/", "/api/v1/alert-events/", "/api/v1/clusters/",
                                  "/api/v1/stats/overview", "/api/v1/stats/llm-calls"])
def test_an_unknown_query_parameter_is_400_not_ignored(admin_client, dataset, path):
    """A typo must not answer with every row as if no filter had been asked for."""
    response = admin_client.get(path, {"review_stauts": "new"})
    assert response.status_code == 400
    assert "Unknown query parameter" in response.json()["review_stauts"][0]
    assert admin_client.get(path, {"format": "json"}).status_code == 200


def test_conversation_detail_has_turns_evaluations_feedback_and_calls(admin_client, dataset):
    body = admin_client.get(f"/api/v1/conversations/{dataset.flagged.pk}/").json()
    assert body["external_id"] == "conv-a" and body["risk_level"] == "critical"
    assert [t["sequence"] for t in body["turns"]] == [1, 2]
    first = body["turns"][0]
    assert first["risk_reasons"][0]["rule"] == "Self-harm words"
    assert first["evaluations"][0]["reasoning"].startswith("Ignored")
    assert first["feedback"][0]["rating"] == "down"
    assert first["llm_calls"][0]["function_name"] == "answer"
    assert "voter_key" not in first["feedback"][0]
    assert admin_client.get("/api/v1/conversations/999999/").status_code == 404
    assert admin_client.get("/api/v1/conversations/abc/").status_code == 404


def test_turn_evaluation_feedback_alert_lists(admin_client, dataset, chatbot):
    from django.utils import timezone

    from apps.alerts.models import AlertEvent

    turns = admin_client.get("/api/v1/turns/", {"has_error": "true"}).json()["results"]
    assert [t["id"] for t in turns] == [dataset.t2.pk]
    turns = admin_client.get("/api/v1/turns/", {"conversation": dataset.calm.pk, "fallback_used": "true"}).json()["results"]
    assert [t["id"] for t in turns] == [dataset.t3.pk]
    turns = admin_client.get("/api/v1/turns/", {"judge_max": 2.5}).json()["results"]
    assert {t["id"] for t in turns} == {dataset.t1.pk, dataset.t_other.pk}
    evaluations = admin_client.get("/api/v1/evaluations/", {"hallucination": "true"}).json()["results"]
    assert [e["turn"] for e in evaluations] == [dataset.t1.pk]
    feedback = admin_client.get("/api/v1/feedback-items/", {"rating": "down", "has_comment": "true"}).json()["results"]
    assert [f["turn"] for f in feedback] == [dataset.t1.pk]
    AlertEvent.objects.create(chatbot=chatbot, status="firing", severity="critical", started_at=timezone.now())
    AlertEvent.objects.create(chatbot=None, status="firing", started_at=timezone.now())
    events = admin_client.get("/api/v1/alert-events/", {"status": "firing", "severity": "critical"}).json()["results"]
    assert [e["chatbot_slug"] for e in events] == ["shop"]
    chatbots = admin_client.get("/api/v1/chatbots/", {"search": "hr"}).json()["results"]
    assert [c["slug"] for c in chatbots] == ["hr"]


def test_cursor_pagination(admin_client, chatbot):
    from tests.factories import make_conversation

    for i in range(7):
        make_conversation(chatbot, external_id=f"page-{i}")
    seen: list[str] = []
    url = "/api/v1/conversations/?page_size=3"
    while url:
        body = admin_client.get(url).json()
        seen += [row["external_id"] for row in body["results"]]
        url = body["next"]
    assert seen == [f"page-{i}" for i in reversed(range(7))]


def test_filters_are_documented_in_the_openapi_schema(admin_client):
    response = admin_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    params = {p["name"] for p in schema["paths"]["/api/v1/conversations/"]["get"]["parameters"]}
    assert {"chatbot", "risk_level", "rating", "judge_min", "review_status", "assignee", "flag_reason", "search",
            "last_activity_after", "cursor"} <= params
    assert "/api/v1/stats/overview" in schema["paths"]
    stats_params = {p["name"] for p in schema["paths"]["/api/v1/stats/llm-calls"]["get"]["parameters"]}
    assert {"hours", "chatbot", "model", "function_name"} <= stats_params
    for path in ("/api/v1/turns/", "/api/v1/evaluations/", "/api/v1/feedback-items/", "/api/v1/alert-events/",
                 "/api/v1/chatbots/", "/api/v1/conversations/{id}/"):
        assert path in schema["paths"], path
