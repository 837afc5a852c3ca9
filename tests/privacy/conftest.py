import pytest

from apps.conversations.models import Turn


@pytest.fixture
def ingest(bot_client):
    """Post turns through the real ingest API; returns the stored Turn rows."""

    def post(*turns: dict) -> list[Turn]:
        response = bot_client.post("/api/v1/ingest/turns", {"turns": list(turns)}, content_type="application/json")
        assert response.status_code == 207, response.content
        results = response.json()["results"]
        assert all(r["status"] in (200, 201) for r in results), results
        return list(Turn.objects.filter(pk__in=[r["id"] for r in results]).order_by("id"))

    return post
