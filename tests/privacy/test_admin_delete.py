"""Django's own delete (the delete view and "delete selected") of conversations goes through the
privacy service: clusters are recounted and the admin log and audit rows name the conversation
by internal id, never by the bot's id, which can be a phone number (issue 15 §6)."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.clustering.models import Cluster, ClusterMember, ClusterRun
from apps.conversations.models import Conversation, Turn

PHONE = "whatsapp:+4915123456789"


@pytest.fixture
def clustered(ingest, chatbot):
    """Three conversations whose turns form one cluster of three."""
    turns = ingest(
        {"conversation_id": PHONE, "turn_id": "1", "user_id": "carol", "user_message": "my blender broke down"},
        {"conversation_id": f"{PHONE}-2", "turn_id": "1", "user_id": "carol", "user_message": "blender broke again"},
        {"conversation_id": "web-7", "turn_id": "1", "user_id": "dave", "user_message": "parcel is late"},
    )
    run = ClusterRun.objects.create(chatbot=chatbot, window_start=turns[0].timestamp, window_end=turns[-1].timestamp,
                                    backend="tfidf", turn_count=3)
    cluster = Cluster.objects.create(run=run, index=0, label="Blender broke", keywords=["blender", "broke"], size=3)
    for turn in turns:
        ClusterMember.objects.create(cluster=cluster, turn=turn, is_representative=True)
    return cluster


def _no_phone_left() -> None:
    for row in LogEntry.objects.values("object_repr", "change_message"):
        assert "4915123456789" not in str(row)
    for event in AuditEvent.objects.all():
        assert "4915123456789" not in f"{event.object_repr} {event.data}"


@pytest.mark.django_db
def test_the_delete_view_recounts_clusters_and_logs_by_internal_id(admin_client, clustered):
    conversation = Conversation.objects.get(external_id=PHONE)
    url = reverse("admin:conversations_conversation_delete", args=[conversation.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content

    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    clustered.refresh_from_db()
    assert clustered.size == clustered.members.count() == 2
    assert clustered.run.__class__.objects.get(pk=clustered.run_id).turn_count == 2
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.object_repr) == (str(conversation.pk), f"conversation {conversation.pk}")
    event = AuditEvent.objects.get(action="privacy.conversation_deleted")
    assert event.data["conversation_id"] == conversation.pk and event.data["deleted"]["turns"] == 1
    _no_phone_left()
    # The message (a cookie) names the internal id too.
    listing = admin_client.get(reverse("admin:conversations_conversation_changelist")).content.decode()
    assert f"“#{conversation.pk}” was deleted" in listing and f"“{PHONE}”" not in listing


@pytest.mark.django_db
def test_delete_selected_goes_through_the_service_too(admin_client, clustered):
    chosen = list(Conversation.objects.filter(external_id__startswith=PHONE).values_list("pk", flat=True))
    response = admin_client.post(reverse("admin:conversations_conversation_changelist"), {
        "action": "delete_selected", "_selected_action": chosen, "post": "yes"})
    assert response.status_code == 302, response.content

    assert list(Turn.objects.values_list("conversation__external_id", flat=True)) == ["web-7"]
    clustered.refresh_from_db()
    assert clustered.size == 1 and "blender" not in clustered.keywords and clustered.label != "Blender broke"
    assert sorted(LogEntry.objects.values_list("object_repr", flat=True)) == sorted(
        f"conversation {pk}" for pk in chosen)
    assert AuditEvent.objects.filter(action="privacy.conversation_deleted").count() == 2
    _no_phone_left()
