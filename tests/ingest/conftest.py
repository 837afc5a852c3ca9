import json

import pytest


@pytest.fixture
def post_json(bot_client):
    """POST a JSON body to an ingest endpoint as `chatbot`'s bot."""

    def post(path: str, body, **extra):
        return bot_client.post(path, json.dumps(body), content_type="application/json", **extra)

    return post
