"""NUL (and other characters PostgreSQL will not store or compare) in anything a client puts in
a URL or query string is a 4xx, never a 500 (issue 15 §4). Run on PostgreSQL: SQLite accepts
NUL, so there these pass either way."""

import pytest

from apps.conversations.models import Turn

pytestmark = pytest.mark.django_db
NUL = "%00"


@pytest.mark.parametrize("url", [
    f"/api/v1/conversations/?external_id=a{NUL}b",
    f"/api/v1/conversations/?channel={NUL}",
    f"/api/v1/conversations/?search=x{NUL}",
    f"/api/v1/turns/?external_id={NUL}",
    f"/api/v1/chatbots/?slug={NUL}",
    f"/api/v1/chatbots/?search={NUL}",
    f"/api/v1/stats/overview?chatbot={NUL}",
    f"/api/v1/stats/llm-calls?model={NUL}",
])
def test_staff_api_query_parameters(client, alice, url):
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code < 500, (url, response.status_code, response.content[:300])


def test_widget_demo_chatbot_parameter(client, alice, settings):
    settings.FEEDBACK_DEMO_PUBLIC = True
    response = client.get(f"/demo/widget/?chatbot=sh{NUL}op")
    assert response.status_code == 200


@pytest.mark.parametrize("user_id", [f"a{NUL}b", NUL, "tab%09id"])
def test_erasure_user_id_in_the_url(bot_client, user_id):
    response = bot_client.delete(f"/api/v1/end-users/{user_id}")
    assert response.status_code == 400, response.content
    assert "control characters" in response.json()["detail"]


def test_feedback_ids_and_comment(post_json, chatbot):
    post_json("/api/v1/ingest/turns", {"conversation_id": "c", "turn_id": "t", "user_message": "Hi"})
    for body in ({"conversation_id": "c\x00", "turn_id": "t", "rating": "up"},
                 {"conversation_id": "c", "turn_id": "t\x00", "rating": "up"},
                 {"conversation_id": "c", "turn_id": "t", "rating": "up", "user_id": "\x00"},
                 {"conversation_id": "c", "turn_id": "t", "rating": "up", "comment": "\x00"}):
        response = post_json("/api/v1/feedback", body)
        assert response.status_code == 400, (body, response.content)
    assert Turn.objects.get().thumbs_up == 0


def test_admin_search(client, alice):
    client.force_login(alice)
    for url in (f"/admin/conversations/conversation/?q=a{NUL}", f"/admin/conversations/turn/?q={NUL}"):
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
