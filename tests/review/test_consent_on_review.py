"""Consent is visible to reviewers (issue 18): a badge and an explanation on the review page,
and a consent filter on the conversation list and the review queue. Data comes in through the
bot API, pages are read as logged-in staff users."""

import pytest

from apps.conversations.models import Conversation
from apps.privacy.policy import NO_CONTENT_MARKER

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_consents(post_json, admin_client):
    for consent in ("full", "no_content", "no_training"):
        body = {"conversation_id": f"c-{consent}", "turn_id": f"t-{consent}", "user_message": f"my card {consent}",
                "bot_response": "Noted.", "consent": consent}
        response = post_json("/api/v1/ingest/turns", body)
        assert response.status_code in (200, 201), response.content
    conversations = {c.consent: c for c in Conversation.objects.all()}
    for conversation in conversations.values():  # flagged by hand, so each is in the review queue too
        response = admin_client.post(f"/admin/conversations/conversation/{conversation.pk}/change/",
                                     {"action": "flag", "note": "look"})
        assert response.status_code == 302
    assert Conversation.objects.filter(is_flagged=True).count() == 3
    return conversations


def _review_page(client, conversation) -> str:
    response = client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_no_content_conversation_says_so_with_why(bob_client, three_consents):
    page = _review_page(bob_client, three_consents["no_content"])
    assert 'id="consent-badge"' in page and "no content stored" in page
    assert 'id="consent-note"' in page
    assert f"<code>{NO_CONTENT_MARKER}</code>" in page
    assert "none was sent to a judge or an embedding model" in page
    assert "my card no_content" not in page  # and indeed no text was stored


def test_no_training_and_full_have_their_own_badges(bob_client, three_consents):
    no_training = _review_page(bob_client, three_consents["no_training"])
    assert "not for training" in no_training and "left out of" in no_training
    assert "my card no_training" in no_training  # texts are kept for review
    full = _review_page(bob_client, three_consents["full"])
    assert "full consent" in full
    assert 'id="consent-note"' not in full and "no content stored" not in full


@pytest.mark.parametrize("url", ["/admin/conversations/conversation/", "/admin/review/flaggedconversation/"])
def test_the_lists_filter_by_consent(bob_client, three_consents, url):
    everything = bob_client.get(url)
    assert everything.status_code == 200
    assert "By consent" in everything.content.decode()
    assert set(everything.context["cl"].queryset.values_list("consent", flat=True)) == {
        "full", "no_content", "no_training"}
    for consent in ("full", "no_content", "no_training"):
        response = bob_client.get(url, {"consent__exact": consent})
        assert response.status_code == 200
        assert list(response.context["cl"].queryset.values_list("external_id", flat=True)) == [f"c-{consent}"]


def test_an_unknown_consent_in_the_filter_is_not_a_500(bob_client, three_consents):
    response = bob_client.get("/admin/conversations/conversation/", {"consent__exact": "everything"})
    assert response.status_code < 500
