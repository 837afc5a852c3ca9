"""Reviewers see and act only on the chatbots they are assigned to, in the admin and the API."""

import pytest
from django.contrib.auth.models import Group

from apps.audit.models import AuditEvent
from apps.chatbots.access import CHATBOT_ADMIN_GROUP, REVIEWER_GROUP
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback

pytestmark = pytest.mark.django_db


def test_roles_exist_with_their_permissions():
    reviewer = set(Group.objects.get(name=REVIEWER_GROUP).permissions.values_list("content_type__app_label", "codename"))
    assert ("conversations", "change_conversation") in reviewer
    assert ("evaluations", "view_evaluation") in reviewer and ("feedback", "view_feedback") in reviewer
    assert ("clustering", "view_cluster") in reviewer
    assert ("chatbots", "change_chatbot") not in reviewer and ("conversations", "delete_conversation") not in reviewer
    admin = set(Group.objects.get(name=CHATBOT_ADMIN_GROUP).permissions.values_list("content_type__app_label", "codename"))
    for perm in [("chatbots", "add_chatbot"), ("chatbots", "add_apikey"), ("risk", "change_detectionrule"),
                 ("ingest", "change_modelprice"), ("alerts", "add_alertrule"), ("alerts", "add_notificationchannel")]:
        assert perm in admin
    assert reviewer <= admin


def test_reviewer_queue_lists_only_assigned_chatbots(bob_client, dataset):
    response = bob_client.get("/admin/review/flaggedconversation/")
    assert response.status_code == 200
    assert [c.external_id for c in response.context["cl"].result_list] == ["conv-a"]
    assert {t["label"]: t["count"] for t in response.context["status_tabs"]}["All flagged"] == 1
    chatbot_filter = next(f for f in response.context["cl"].filter_specs if f.title == "chatbot")
    assert [label for _, label in chatbot_filter.lookup_choices] == ["Shop assistant"]


def test_reviewer_cannot_open_or_act_on_another_chatbots_conversation(bob_client, dataset):
    other = dataset.other
    assert bob_client.get(f"/admin/conversations/conversation/{other.pk}/change/").status_code == 404
    assert bob_client.get(f"/admin/review/flaggedconversation/{other.pk}/change/").status_code == 404
    assert bob_client.get(f"/admin/conversations/conversation/{other.pk}/export/").status_code == 404
    assert bob_client.post(f"/admin/conversations/conversation/{other.pk}/change/", {"action": "assign_to_me"}).status_code == 404
    assert bob_client.get(f"/admin/conversations/turn/{dataset.t_other.pk}/change/").status_code == 404
    # A bulk action with a foreign id selected touches only what the reviewer may see.
    bob_client.post("/admin/review/flaggedconversation/",
                    {"action": "mark_resolved", "_selected_action": [dataset.flagged.pk, other.pk]})
    other.refresh_from_db()
    dataset.flagged.refresh_from_db()
    assert other.review_status == "new" and dataset.flagged.review_status == "resolved"
    assert not AuditEvent.objects.filter(object_id=str(other.pk)).exists()
    # Their own chatbot works.
    assert bob_client.get(f"/admin/conversations/conversation/{dataset.flagged.pk}/change/").status_code == 200


@pytest.mark.parametrize("url", [
    "/admin/conversations/turn/", "/admin/conversations/llmcall/", "/admin/evaluations/evaluation/",
    "/admin/feedback/feedback/",
])
def test_reviewer_lists_in_the_admin_are_scoped(bob_client, admin_client, dataset, other_chatbot, url):
    def chatbots_listed(client) -> set[int]:
        response = client.get(url)
        assert response.status_code == 200, url
        return {row.chatbot_id for row in response.context["cl"].result_list}

    # The dataset's other chatbot has turns and calls; give it an evaluation and a vote too.
    Evaluation.objects.create(turn=dataset.t_other, chatbot=other_chatbot, evaluator="heuristic",
                              evaluator_version="heuristic-v1", status="done", overall=3)
    Feedback.objects.create(turn=dataset.t_other, chatbot=other_chatbot, voter_key="v-hr", rating="down")
    # The superuser's list holds both chatbots' rows, the reviewer's only their chatbot's.
    assert chatbots_listed(admin_client) == {dataset.flagged.chatbot_id, other_chatbot.pk}
    assert chatbots_listed(bob_client) == {dataset.flagged.chatbot_id}


def test_reviewer_dashboard_shows_only_their_chatbots(bob_client, dataset, other_chatbot):
    response = bob_client.get("/admin/")
    assert response.status_code == 200
    assert response.context["dashboard"]["totals"]["turns"] == 4
    assert [b["name"] for b in response.context["dashboard_chatbots"]] == ["Shop assistant"]
    forced = bob_client.get("/admin/", {"chatbot": other_chatbot.pk})
    assert forced.context["dashboard"]["totals"]["turns"] == 4  # not the other bot's numbers


def test_reviewer_without_chatbots_sees_nothing(charlie_client, dataset):
    assert charlie_client.get("/admin/").context["dashboard"]["totals"]["turns"] == 0
    assert charlie_client.get("/api/v1/conversations/").json()["results"] == []
    response = charlie_client.get("/admin/review/flaggedconversation/")
    assert list(response.context["cl"].result_list) == []


def test_reviewer_api_scope(bob_client, dataset, other_chatbot):
    listed = bob_client.get("/api/v1/conversations/").json()["results"]
    assert {c["external_id"] for c in listed} == {"conv-a", "conv-b", "conv-c"}
    assert bob_client.get(f"/api/v1/conversations/{dataset.other.pk}/").status_code == 404
    assert bob_client.get(f"/api/v1/turns/{dataset.t_other.pk}/").status_code == 404
    assert bob_client.get(f"/api/v1/chatbots/{other_chatbot.pk}/").status_code == 404
    assert bob_client.post(f"/api/v1/conversations/{dataset.other.pk}/review/", {"action": "assign_to_me"},
                           content_type="application/json").status_code == 404
    assert bob_client.get(f"/api/v1/conversations/{dataset.other.pk}/export/").status_code == 404
    assert bob_client.get("/api/v1/stats/overview", {"chatbot": other_chatbot.pk}).status_code == 404
    assert bob_client.get("/api/v1/stats/llm-calls", {"chatbot": other_chatbot.slug}).status_code == 404
    # Asking a list for a chatbot outside the scope is a 400, not a silently empty page.
    response = bob_client.get("/api/v1/turns/", {"chatbot": other_chatbot.pk})
    assert response.status_code == 400 and "chatbot" in response.json()
    for url in ("/api/v1/turns/", "/api/v1/evaluations/", "/api/v1/feedback-items/", "/api/v1/chatbots/"):
        rows = bob_client.get(url).json()["results"]
        assert rows, url
        assert {row.get("chatbot", row.get("id")) for row in rows} == {dataset.flagged.chatbot_id}, url


def test_reviewer_may_review_own_chatbot_through_the_api(bob_client, bob, dataset):
    response = bob_client.post(f"/api/v1/conversations/{dataset.flagged.pk}/review/", {"action": "assign_to_me"},
                               content_type="application/json")
    assert response.status_code == 200
    assert response.json()["assignee"] == "bob"


def test_staff_without_change_permission_cannot_review(client, django_user_model, chatbot, dataset):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    chatbot.reviewers.add(viewer)
    client.force_login(viewer)
    response = client.post(f"/api/v1/conversations/{dataset.flagged.pk}/review/", {"action": "assign_to_me"},
                           content_type="application/json")
    assert response.status_code == 403
    assert client.get("/admin/conversations/conversation/").status_code == 403


def test_api_needs_staff(client, django_user_model, dataset):
    assert client.get("/api/v1/conversations/").status_code in (401, 403)
    client.force_login(django_user_model.objects.create_user("enduser"))
    assert client.get("/api/v1/stats/overview").status_code == 403


def test_token_auth(client, bob, dataset):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=bob)
    response = client.get("/api/v1/conversations/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert {c["external_id"] for c in response.json()["results"]} == {"conv-a", "conv-b", "conv-c"}
