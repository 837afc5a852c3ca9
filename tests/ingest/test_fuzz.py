"""Property-based fuzzing of the ingest endpoints: whatever a client sends, never a 5xx."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingest.validation import MAX_COST_USD, MAX_LATENCY_MS, MAX_TOKENS

# Text includes lone UTF-16 surrogates: valid JSON ("\ud800"), but not storable text.
lone_surrogates = st.lists(st.integers(0xD800, 0xDFFF).map(chr), min_size=1, max_size=2).map("".join)
# NUL, C0/C1 controls and DEL: PostgreSQL refuses NUL in text and jsonb (issue 15 §4).
controls = st.text(alphabet=st.characters(max_codepoint=0x9F, exclude_categories=["Cs"]), max_size=8)
hostile = st.sampled_from(["\x00", "a\x00b", "\x00" * 3, "\t", "\n", "\r\n", "\x1b[2J", "\x7f", "\x85", "\ufffd"])
texts = (st.text(max_size=50) | st.tuples(st.text(max_size=10), lone_surrogates).map("".join) | controls | hostile
         | st.tuples(st.text(max_size=10), hostile, st.text(max_size=10)).map("".join))
# Each documented maximum, one past it, and the column sizes that overflowed before.
boundaries = st.sampled_from([
    0, -1, MAX_TOKENS, MAX_TOKENS + 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, MAX_LATENCY_MS, MAX_LATENCY_MS + 1,
    int(MAX_COST_USD), str(MAX_COST_USD), "1000000.000001", 1e6, 999999.9999999, 600000, "99999999.999999",
    1e-7, "1e-7", "-0", "1e999", "0.0000005",
])
json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | texts | boundaries)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=12)
field_names = st.sampled_from([
    "conversation_id", "turn_id", "user_id", "channel", "user_message", "bot_response", "timestamp", "latency_ms",
    "fallback_used", "error", "intent", "model", "tokens", "cost_usd", "llm_calls", "metadata", "call_id",
    "input_tokens", "output_tokens", "duration_ms", "input", "output", "success", "function_name", "provider",
])
timestamps = st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30))
turn_like = st.fixed_dictionaries(
    {"conversation_id": st.one_of(st.text(max_size=300), st.integers(), texts), "user_message": st.one_of(st.text(max_size=200), json_values)},
    optional={"call_id": texts, "user_id": texts, "channel": texts, "model": texts,
              "timestamp": timestamps, "tokens": st.one_of(json_values, st.fixed_dictionaries({}, optional={"prompt": json_values, "completion": json_values})),
              "llm_calls": st.lists(st.dictionaries(field_names, json_values, max_size=6), max_size=3),
              "cost_usd": json_values, "latency_ms": json_values, "metadata": json_values, "turn_id": json_values, "error": json_values},
)
# Turns at the numeric edges, some into the same two conversations so the sums grow too.
edge_turn = st.fixed_dictionaries({
    "conversation_id": st.sampled_from(["edge-a", "edge-b"]), "user_message": st.just("x"), "cost_usd": boundaries,
    "tokens": st.fixed_dictionaries({"prompt": boundaries, "completion": boundaries}),
    "llm_calls": st.lists(st.fixed_dictionaries({"cost_usd": boundaries, "input_tokens": boundaries,
                                                 "output_tokens": boundaries}), max_size=100),
})
bodies = st.one_of(
    turn_like,
    edge_turn,
    st.fixed_dictionaries({"turns": st.lists(edge_turn, max_size=3)}),
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
