"""Every malformed field is a 400 with a field-level message; never a 500."""

import json

import pytest

from apps.conversations.models import Turn

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/turns"
GOOD = {"conversation_id": "c", "user_message": "Hi"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("conversation_id", None, "required"),
    ("conversation_id", "", "blank"),
    ("conversation_id", "x" * 256, "255"),
    ("conversation_id", {"a": 1}, "string"),
    ("conversation_id", True, "string"),
    ("user_message", 5, "string"),
    ("user_message", "x" * 40000, "At most"),
    ("bot_response", ["a"], "string"),
    ("timestamp", "yesterday", "ISO 8601"),
    ("timestamp", "2999-01-01T00:00:00Z", "future"),
    ("timestamp", "1970-01-01T00:00:00Z", "2000"),
    ("timestamp", 1700000000, "ISO 8601"),
    ("latency_ms", -1, "between"),
    ("latency_ms", "fast", "integer"),
    ("latency_ms", True, "integer"),
    ("fallback_used", "yes", "true or false"),
    ("error", 3, "boolean or an error message"),
    ("tokens", [1, 2], "object"),
    ("cost_usd", "free", "number"),
    ("cost_usd", -1, "between"),
    ("metadata", "plain text", "JSON object"),
    ("metadata", [1, 2], "JSON object"),
    ("metadata", {"blob": "x" * 20000}, "bytes"),
    ("llm_calls", {"a": 1}, "list"),
    ("llm_calls", [{"input_tokens": -5}], "between"),
    ("channel", "nul\x00byte", "control characters"),
])
def test_field_errors(post_json, field, value, message):
    body = {**GOOD, field: value}
    if value is None:
        body.pop(field)
    response = post_json(URL, body)
    assert response.status_code == 400, response.content
    errors = response.json()
    text = json.dumps(errors[field])
    assert message in text
    assert not Turn.objects.exists()


def test_all_errors_are_reported_at_once(post_json):
    response = post_json(URL, {"latency_ms": "x", "metadata": 1})
    assert set(response.json()) == {"conversation_id", "user_message", "latency_ms", "metadata"}


def test_token_subfield_errors_are_nested(post_json):
    response = post_json(URL, {**GOOD, "tokens": {"prompt": "many", "completion": -2}})
    assert response.status_code == 400
    assert set(response.json()["tokens"]) == {"prompt", "completion"}


@pytest.mark.parametrize("body", ["{not json", "[1, 2", '{"a": NaN}', '{"a": Infinity}', "\xff\xfe"])
def test_invalid_json_is_400(bot_client, body):
    response = bot_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize("body", [
    '{"conversation_id": "c", "user_message": "bad \\ud800 here"}',
    '{"conversation_id": "\\udfff", "user_message": "x"}',
    '{"conversation_id": "c", "user_message": "x", "metadata": {"\\ud800": 1}}',
])
def test_lone_surrogates_are_400_not_500(bot_client, body):
    response = bot_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "surrogate" in response.json()["detail"]
    assert not Turn.objects.exists()


@pytest.mark.parametrize("body", [
    # Deep enough to overflow later recursive steps (validation, json.dumps), not the parser.
    '{"conversation_id": "c", "user_message": "x", "metadata": ' + '{"a": ' * 450 + "1" + "}" * 450 + "}",
    '{"conversation_id": "c", "user_message": "x", "metadata": {"m": ' + "[" * 5000 + "]" * 5000 + "}}",
    "[" * 100_000,
])
def test_deeply_nested_json_is_400_not_500(bot_client, body):
    response = bot_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json()["detail"]
    assert not Turn.objects.exists()


def test_escaped_surrogate_pairs_are_real_text(post_json):
    response = post_json(URL, {"conversation_id": "c", "user_message": "thanks 😀"})  # sent as \ud83d\ude00
    assert response.status_code == 201
    assert Turn.objects.get().user_message == "thanks 😀"


@pytest.mark.parametrize("body", ["[]", "3", '"text"', "null"])
def test_non_object_json_is_400(bot_client, body):
    response = bot_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_415(bot_client, content_type):
    response = bot_client.post(URL, json.dumps(GOOD), content_type=content_type)
    assert response.status_code == 415


def test_json_with_charset_is_fine(bot_client):
    response = bot_client.post(URL, json.dumps(GOOD), content_type="application/json; charset=utf-8")
    assert response.status_code == 201


def test_oversized_body_is_413(bot_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = bot_client.post(URL, json.dumps({**GOOD, "bot_response": "x" * 2000}), content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_throttled_key_gets_429_with_retry_after(post_json, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ingest": "3/min"}}
    statuses = [post_json(URL, GOOD).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    response = post_json(URL, GOOD)
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 61
    assert Turn.objects.count() == 3


def test_throttle_is_per_key(post_json, client, other_api_key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ingest": "1/min"}}
    assert post_json(URL, GOOD).status_code == 201
    assert post_json(URL, GOOD).status_code == 429
    other = client.post(URL, json.dumps(GOOD), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {other_api_key}")
    assert other.status_code == 201
