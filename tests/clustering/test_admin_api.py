"""Admin pages and actions as logged-in staff, and the staff API."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.clustering.choices import RunStatus
from apps.clustering.models import Cluster, ClusterRun
from apps.clustering.runs import cluster_run_create
from apps.clustering.tasks import cluster_run_execute
from apps.conversations.models import Conversation, Turn
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def done_run(chatbot, themed_turns) -> ClusterRun:
    run = cluster_run_create(chatbot=chatbot, days=7)
    cluster_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    return run


def test_chatbot_admin_action_asks_then_queues_a_run(admin_client, chatbot, themed_turns,
                                                     django_capture_on_commit_callbacks):
    url = "/admin/chatbots/chatbot/"
    data = {"action": "cluster_admin_action", "_selected_action": [chatbot.pk]}
    page = admin_client.post(url, data)
    assert page.status_code == 200
    assert b"Cluster failure turns" in page.content and b"Shop assistant" in page.content
    assert not ClusterRun.objects.exists()

    invalid = admin_client.post(url, {**data, "apply": "1", "days": "0"})
    assert invalid.status_code == 200 and not ClusterRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {**data, "apply": "1", "days": "7", "backend": "tfidf"}, follow=True)
    assert response.status_code == 200
    assert b"Clustering queued for Shop assistant" in response.content
    run = ClusterRun.objects.get()
    assert run.status == RunStatus.DONE and run.cluster_count == 3
    assert run.parameters["days"] == 7 and run.requested_by.username == "alice"


def test_admin_pages_render_with_links(admin_client, done_run, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert admin_client.get("/admin/clustering/clusterrun/").status_code == 200
    page = admin_client.get(f"/admin/clustering/clusterrun/{done_run.pk}/change/")
    assert page.status_code == 200
    for cluster in done_run.clusters.all():
        assert cluster.label.encode() in page.content
    with django_assert_max_num_queries(12):
        assert admin_client.get("/admin/clustering/cluster/").status_code == 200

    cluster = done_run.clusters.first()
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(f"/admin/clustering/cluster/{cluster.pk}/change/")
    assert page.status_code == 200
    assert len(queries) <= 12
    member = cluster.members.select_related("turn").first()
    assert f'/admin/conversations/conversation/{member.turn.conversation_id}/change/'.encode() in page.content
    assert member.turn.user_message.encode() in page.content


def test_reviewer_sees_only_own_chatbots_runs(client, bob, charlie, done_run):
    client.force_login(charlie)
    assert client.get(f"/admin/clustering/cluster/{done_run.clusters.first().pk}/change/").status_code in (302, 404)
    assert b"Shop assistant" not in client.get("/admin/clustering/clusterrun/").content
    client.force_login(bob)
    assert client.get(f"/admin/clustering/cluster/{done_run.clusters.first().pk}/change/").status_code == 200


def test_export_jsonl_is_valid_finetuning_format_and_audited(admin_client, done_run, settings, chatbot):
    settings.FINETUNE_EXPORT_SYSTEM_PROMPT = "You are the shop's support assistant."
    noanswer = make_turn(chatbot=chatbot, user_message="refund?", bot_response="", thumbs_down=1)
    cluster = done_run.clusters.first()
    cluster.members.create(turn=noanswer, distance=0.9)
    # Only reviewed turns are exported by default: a reviewer closed these conversations.
    Conversation.objects.filter(turns__cluster_memberships__cluster=cluster).update(review_status="resolved")
    response = admin_client.post(
        "/admin/clustering/cluster/", {"action": "export_finetune_jsonl", "_selected_action": [cluster.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/jsonl")
    assert "attachment" in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert len(lines) == cluster.size == 8  # the turn without an answer is left out
    assert response["X-Skipped-Without-Answer"] == "1"
    for line in lines:
        record = json.loads(line)
        assert list(record) == ["messages"]
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in record["messages"])
        assert record["messages"][0]["content"] == "You are the shop's support assistant."
    event = AuditEvent.objects.get(action="cluster.export_finetune_jsonl")
    assert event.actor.username == "alice" and event.chatbot == chatbot
    assert event.object_id == str(cluster.pk) and event.data["lines"] == 8


def test_export_jsonl_uses_corrected_answers_and_only_reviewed_turns(admin_client, done_run, chatbot):
    from apps.clustering.exports import cluster_finetune_jsonl

    cluster = done_run.clusters.first()
    members = list(cluster.members.select_related("turn").order_by("distance", "id"))
    corrected, closed, *unreviewed = (m.turn for m in members)
    # The fixture's turns share one conversation: give the closed one a conversation of its own.
    Turn.objects.filter(pk=closed.pk).update(conversation=make_conversation(chatbot, external_id="closed-one"))
    closed.refresh_from_db()
    Conversation.objects.filter(turns__cluster_memberships__cluster=cluster).update(review_status="new")
    Turn.objects.filter(pk=corrected.pk).update(corrected_answer="Refunds are possible within 30 days.")
    Conversation.objects.filter(pk=closed.conversation_id).update(review_status="false_positive")

    response = admin_client.post(
        "/admin/clustering/cluster/", {"action": "export_finetune_jsonl", "_selected_action": [cluster.pk]}
    )
    records = [json.loads(line) for line in response.content.decode().splitlines()]
    answers = [record["messages"][-1]["content"] for record in records]
    assert answers == ["Refunds are possible within 30 days.", closed.bot_response]
    # Asked for explicitly, the unreviewed turns come too, still with the correction applied.
    body, lines, _ = cluster_finetune_jsonl(clusters=[cluster], actor=None, reviewed_only=False)
    assert lines == len(members) and "Refunds are possible within 30 days." in body


# --- staff API ------------------------------------------------------------------------------
def test_api_lists_clusters_with_filters(admin_client, done_run, other_chatbot, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        response = admin_client.get("/api/v1/clusters/", {"chatbot": done_run.chatbot_id})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    first = body["results"][0]
    assert first["run"] == done_run.pk and first["chatbot_slug"] == "shop"
    assert len(first["representatives"]) == 5 and first["representatives"][0]["conversation"]
    assert admin_client.get("/api/v1/clusters/", {"run": done_run.pk}).json()["count"] == 3
    assert admin_client.get("/api/v1/clusters/", {"chatbot_slug": "hr"}).json()["count"] == 0
    assert admin_client.get("/api/v1/clusters/", {"chatbot": other_chatbot.pk}).json()["count"] == 0
    assert admin_client.get("/api/v1/clusters/", {"run": "abc"}).status_code == 400

    runs = admin_client.get("/api/v1/cluster-runs/", {"chatbot_slug": "shop", "status": "done"})
    assert runs.status_code == 200 and [r["id"] for r in runs.json()["results"]] == [done_run.pk]
    assert admin_client.get("/api/v1/cluster-runs/", {"status": "bogus"}).status_code == 400


def test_api_cluster_turns(admin_client, done_run, django_assert_max_num_queries):
    cluster = done_run.clusters.first()
    with django_assert_max_num_queries(6):
        response = admin_client.get(f"/api/v1/clusters/{cluster.pk}/turns/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 8
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)
    assert {"turn", "conversation", "user_message", "bot_response", "judge_overall"} <= set(results[0])
    reps = admin_client.get(f"/api/v1/clusters/{cluster.pk}/turns/", {"is_representative": "true"}).json()
    assert len(reps["results"]) == 5


def test_api_pages_follow_their_next_links(admin_client, done_run):
    """Paging parameters (limit/offset here, cursor elsewhere) are not mistaken for unknown filters."""
    cluster = done_run.clusters.first()
    for url, per_page, total in [("/api/v1/clusters/?limit=2", 2, 3), (f"/api/v1/clusters/{cluster.pk}/turns/?limit=3", 3, 8)]:
        seen = 0
        while url:
            response = admin_client.get(url)
            assert response.status_code == 200, response.content
            body = response.json()
            assert len(body["results"]) <= per_page
            seen += len(body["results"])
            url = body["next"]
        assert seen == total


def test_api_scoping_and_permissions(client, bob, charlie, done_run):
    cluster = done_run.clusters.first()
    assert client.get("/api/v1/clusters/").status_code in (401, 403)
    client.force_login(charlie)
    assert client.get("/api/v1/clusters/").json()["count"] == 0
    assert client.get(f"/api/v1/clusters/{cluster.pk}/").status_code == 404
    assert client.get(f"/api/v1/clusters/{cluster.pk}/turns/").status_code == 404
    assert client.get("/api/v1/cluster-runs/").json()["results"] == []
    client.force_login(bob)
    assert client.get("/api/v1/clusters/").json()["count"] == 3
    assert client.get(f"/api/v1/clusters/{cluster.pk}/turns/").status_code == 200


def test_schema_lists_the_filters(admin_client):
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    names = {p["name"] for p in schema["paths"]["/api/v1/clusters/"]["get"]["parameters"]}
    assert {"chatbot", "chatbot_slug", "run", "is_noise", "min_size"} <= names
    turn_params = {p["name"] for p in schema["paths"]["/api/v1/clusters/{id}/turns/"]["get"]["parameters"]}
    assert "is_representative" in turn_params


def test_noise_cluster_is_listed_last(admin_client, done_run):
    Cluster.objects.create(run=done_run, index=-1, label="Other", size=1, share=0.01, is_noise=True)
    results = admin_client.get("/api/v1/clusters/").json()["results"]
    assert results[-1]["is_noise"] is True
