"""The read-only admin of end users' stated consent: listed by chatbot, hashed end user, consent
and update time; nobody adds, changes or deletes there; a reviewer sees only their chatbots."""

import pytest

from apps.privacy.hashing import end_user_hash
from apps.privacy.models import EndUserConsent

pytestmark = pytest.mark.django_db

URL = "/admin/privacy/enduserconsent/"


@pytest.fixture
def stated(chatbot, other_chatbot, bot_client, other_api_key):
    from django.test import Client

    assert bot_client.post("/api/v1/end-users/ana/consent", {"consent": "no_content"},
                           content_type="application/json").status_code == 200
    assert bot_client.post("/api/v1/end-users/ben/consent", {"consent": "no_training"},
                           content_type="application/json").status_code == 200
    other = Client(HTTP_AUTHORIZATION=f"Bearer {other_api_key}")
    assert other.post("/api/v1/end-users/cy/consent", {"consent": "no_content"},
                      content_type="application/json").status_code == 200
    return {row.end_user_hash: row for row in EndUserConsent.objects.all()}


def test_the_list_shows_hashed_end_users_and_their_consent(admin_client, chatbot, stated):
    response = admin_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    for user in ("ana", "ben"):
        assert end_user_hash(chatbot_id=chatbot.pk, user_id=user) in page
    assert "ana" not in stated  # only hashes are stored
    assert "No content (metrics only)" in page and "Not for training or exports" in page
    filtered = admin_client.get(URL, {"consent__exact": "no_training"})
    assert list(filtered.context["cl"].queryset.values_list("consent", flat=True)) == ["no_training"]
    searched = admin_client.get(URL, {"q": end_user_hash(chatbot_id=chatbot.pk, user_id="ana")})
    assert list(searched.context["cl"].queryset.values_list("consent", flat=True)) == ["no_content"]


def test_it_is_read_only(admin_client, stated):
    row = next(iter(stated.values()))
    assert admin_client.get(f"{URL}add/").status_code == 403
    detail = admin_client.get(f"{URL}{row.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert admin_client.post(f"{URL}{row.pk}/change/", {"consent": "full"}).status_code == 403
    assert admin_client.post(f"{URL}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert EndUserConsent.objects.get(pk=row.pk).consent == row.consent


def test_a_reviewer_sees_only_their_chatbots(bob_client, chatbot, other_chatbot, stated):
    response = bob_client.get(URL)
    assert response.status_code == 200
    assert set(response.context["cl"].queryset.values_list("chatbot_id", flat=True)) == {chatbot.pk}
    foreign = EndUserConsent.objects.get(chatbot=other_chatbot)
    assert bob_client.get(f"{URL}{foreign.pk}/change/").status_code == 404
    assert other_chatbot.name not in response.content.decode()
