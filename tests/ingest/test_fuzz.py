"""Property-based fuzzing of the ingest endpoints: whatever a client sends, never a 5xx."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Text includes lone UTF-16 surrogates: valid JSON ("\ud800"), but not storable text.
lone_surrogates = st.lists(st.integers(0xD800, 0xDFFF).map(chr), min_size=1, max_size=2).map("".join)
texts = st.text(max_size=50) | st.tuples(st.text(max_size=10), lone_surrogates).map("".join)
json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False) | texts
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=12)
field_names = st.sampled_from([
    "conversation_id", "turn_id", "user_id", "channel", "user_message", "bot_response", "timestamp", "latency_ms",
    "fallback_used", "error", "intent", "model", "tokens", "cost_usd", "llm_calls", "metadata", "call_id",
    "input_tokens", "output_tokens", "duration_ms", "input", "output", "success", "function_name", "provider",
])
timestamps = st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30))
turn_like = st.fixed_dictionaries(
    {"conversation_id": st.one_of(st.text(max_size=300), st.integers(), texts), "user_message": st.one_of(st.text(max_size=200), json_values)},
    optional={"timestamp": timestamps, "tokens": st.one_of(json_values, st.fixed_dictionaries({}, optional={"prompt": json_values, "completion": json_values})),
              "llm_calls": st.lists(st.dictionaries(field_names, json_values, max_size=6), max_size=3),
              "cost_usd": json_values, "latency_ms": json_values, "metadata": json_values, "turn_id": json_values, "error": json_values},
)
bodies = st.one_of(
    turn_like,
    st.dictionaries(field_names, json_values, max_size=8),
    st.fixed_dictionaries({"turns": st.lists(st.one_of(turn_like, json_values), max_size=5)}),
    st.fixed_dictionaries({"llm_calls": st.lists(st.dictionaries(field_names, json_values, max_size=8), max_size=5)}),
    json_values,
)


@pytest.mark.django_db
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, path=st.sampled_from(["/api/v1/ingest/turns", "/api/v1/ingest/llm-calls"]))
def test_no_input_gives_a_server_error(bot_client, body, path):
    response = bot_client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code < 500, (response.status_code, body)
    assert response.status_code in (200, 201, 207, 400, 413, 429)


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain", "application/x-protobuf", ""]))
def test_raw_bytes_never_give_a_server_error(bot_client, raw, content_type):
    response = bot_client.post("/api/v1/ingest/turns", raw, content_type=content_type)
    assert response.status_code in (201, 207, 400, 415), response.content
