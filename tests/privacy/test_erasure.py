from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.clustering.models import Cluster, ClusterMember, ClusterRun, TurnEmbedding
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from apps.feedback.services import feedback_submit, feedback_voter_key
from apps.privacy.hashing import end_user_hash
from tests.factories import make_api_key


def _seed(ingest, chatbot):
    jane = ingest(
        {"conversation_id": "j1", "turn_id": "1", "user_id": "jane", "user_message": "hello", "bot_response": "hi",
         "llm_calls": [{"call_id": "a", "input": "x", "output": "y"}]},
        {"conversation_id": "j1", "turn_id": "2", "user_id": "jane", "user_message": "help", "bot_response": "sure"},
        {"conversation_id": "j2", "turn_id": "1", "user_id": "jane", "user_message": "again", "bot_response": "ok"},
    )
    other = ingest({"conversation_id": "o1", "turn_id": "1", "user_id": "omar", "user_message": "q", "bot_response": "a"})
    for turn in jane:
        Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version="test-erase")
        TurnEmbedding.objects.create(turn=turn, embedder="tfidf", text_hash="0" * 64, dimensions=2, vector=b"12345678")
    # Jane votes on her own turn, and on Omar's (e.g. a shared support thread).
    feedback_submit(turn_id=jane[0].pk, voter_key=feedback_voter_key(turn=jane[0]), rating="down")
    feedback_submit(turn_id=other[0].pk, voter_key=end_user_hash(chatbot_id=chatbot.pk, user_id="jane"), rating="down")
    run = ClusterRun.objects.create(chatbot=chatbot, window_start=jane[0].timestamp, window_end=jane[0].timestamp,
                                    backend="tfidf", turn_count=3, cluster_count=1)
    cluster = Cluster.objects.create(run=run, index=0, label="greetings", size=3, share=1.0)
    for i, turn in enumerate([jane[0], jane[1], other[0]]):
        ClusterMember.objects.create(cluster=cluster, turn=turn, distance=i, is_representative=i < 2)
    return jane, other, cluster


def test_delete_end_user_erases_everything_and_answers_counts(bot_client, chatbot, ingest):
    jane, other, cluster = _seed(ingest, chatbot)
    response = bot_client.delete("/api/v1/end-users/jane")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["deleted"] == {"conversations": 2, "turns": 3, "llm_calls": 1, "evaluations": 3, "feedback": 2,
                               "embeddings": 3, "cluster_memberships": 2, "sessions": 0,
                               "dataset_items": 0, "experiment_results": 0}
    assert body["end_user"] == end_user_hash(chatbot_id=chatbot.pk, user_id="jane")[:12]
    assert not Conversation.objects.filter(external_id__in=["j1", "j2"]).exists()
    assert not Turn.objects.filter(pk__in=[t.pk for t in jane]).exists()
    assert not LLMCall.objects.filter(external_id="a").exists()
    assert not Feedback.objects.exists()
    # Omar's data stays, with its counters and flags exact after Jane's vote went.
    omar_turn = Turn.objects.get(pk=other[0].pk)
    assert omar_turn.thumbs_down == 0 and "thumbs_down" not in omar_turn.flag_reasons
    assert Conversation.objects.get(external_id="o1").thumbs_down == 0
    # The cluster is recounted to its one remaining member, which becomes a representative.
    cluster.refresh_from_db()
    assert (cluster.size, cluster.share) == (1, 1.0)
    assert cluster.run.__class__.objects.get(pk=cluster.run_id).turn_count == 1
    assert ClusterMember.objects.get(cluster=cluster).is_representative
    event = AuditEvent.objects.get(action="privacy.end_user_erased")
    assert event.chatbot_id == chatbot.pk and event.data["deleted"]["turns"] == 3
    assert "jane" not in str(event.__dict__)
    # Idempotent: a repeat answers zeros.
    again = bot_client.delete("/api/v1/end-users/jane").json()
    assert set(again["deleted"].values()) == {0}


def test_erasure_is_scoped_to_the_keys_chatbot(client, chatbot, other_chatbot, ingest, api_key):
    ingest({"conversation_id": "j1", "user_id": "jane", "user_message": "hello"})
    _, other_key = make_api_key(other_chatbot)
    response = client.delete("/api/v1/end-users/jane", HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert response.status_code == 200 and response.json()["deleted"]["conversations"] == 0
    assert Conversation.objects.filter(chatbot=chatbot, external_id="j1").exists()


def test_erasure_needs_a_bot_key(client, admin_client):
    assert client.delete("/api/v1/end-users/jane").status_code == 401
    assert client.delete("/api/v1/end-users/jane", HTTP_AUTHORIZATION="Bearer cm_nope").status_code == 401
    assert admin_client.delete("/api/v1/end-users/jane").status_code in (401, 403)


def test_user_ids_with_slashes_and_at_signs(bot_client, chatbot, ingest):
    ingest({"conversation_id": "j1", "user_id": "tenant/42 jane@example.com", "user_message": "hello"})
    response = bot_client.delete("/api/v1/end-users/tenant/42%20jane@example.com")
    assert response.json()["deleted"]["conversations"] == 1


def test_admin_action_erases_after_confirmation(admin_client, chatbot, ingest):
    from django.contrib import admin

    from apps.privacy.admin import erase_end_user_admin_action

    ingest({"conversation_id": "j1", "user_id": "jane", "user_message": "hello"},
           {"conversation_id": "j2", "user_id": "jane", "user_message": "again"},
           {"conversation_id": "anon", "user_message": "no user"},
           {"conversation_id": "o1", "user_id": "omar", "user_message": "hi"})
    assert erase_end_user_admin_action in admin.site._registry[Conversation].actions
    url = reverse("admin:conversations_conversation_changelist")
    ids = [str(c.pk) for c in Conversation.objects.filter(external_id__in=["j1", "anon"])]
    data = {"action": "erase_end_user_admin_action", "_selected_action": ids}
    confirm = admin_client.post(url, data)
    assert confirm.status_code == 200 and b"Yes, erase" in confirm.content
    assert Conversation.objects.count() == 4  # nothing deleted before confirming
    done = admin_client.post(url, {**data, "post": "yes"})
    assert done.status_code == 302
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["o1"]
    assert AuditEvent.objects.filter(action="privacy.end_user_erased", actor__username="alice").count() == 1
    assert AuditEvent.objects.filter(action="privacy.conversation_erased").count() == 1


def test_erasure_removes_the_users_open_sessions(bot_client, chatbot, ingest):
    from apps.conversations.models import EndUserSession

    ingest({"user_id": "sam", "channel": "web", "user_message": "hi, no conversation id"},
           {"user_id": "kim", "channel": "web", "user_message": "me neither"})
    assert EndUserSession.objects.filter(chatbot=chatbot).count() == 2

    response = bot_client.delete("/api/v1/end-users/sam")

    assert response.json()["deleted"]["sessions"] == 1
    assert list(EndUserSession.objects.values_list("end_user_hash", flat=True)) == [
        end_user_hash(chatbot_id=chatbot.pk, user_id="kim")
    ]
