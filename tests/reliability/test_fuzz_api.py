"""API fuzzing: every operation in /api/schema/ gets random path ids, query parameters and JSON
bodies (arbitrary values, and objects shaped like the schema with wrong values). Nothing a
client sends may produce a 5xx. FUZZ_EXAMPLES bounds the examples per operation (CI: 25)."""

import json
import os
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
METHODS = ("get", "post", "put", "patch", "delete")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1e999", "2025-01-01T00:00:00Z", "9999-12-31", "\x00", "../../etc", "' OR 1=1"]),
    # Control characters anywhere in a string, and the numeric edges of the ingest contract and
    # of the database's column types (issue 15 §4).
    st.text(alphabet=st.characters(max_codepoint=0x9F, exclude_categories=["Cs"]), max_size=8),
    st.sampled_from(["a\x00b", "\t", "\x1b[2J", "\x85", 10_000_000, 10_000_001, 2**31 - 1, 2**31, 2**63 - 1,
                     2**63, 1_000_000, "1000000", "1000000.000001", 32767, 32768, 86_400_000, 86_400_001]),
)
texts_with_controls = st.one_of(
    st.text(max_size=20), st.text(alphabet=st.characters(max_codepoint=0x9F, exclude_categories=["Cs"]), max_size=8),
    st.sampled_from(["\x00", "a\x00b", "\t", "\n", "\x7f", "\x85"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _operations() -> list[tuple[str, str, dict]]:
    import django

    django.setup()
    paths = json.loads(json.dumps(_schema(), default=str))["paths"]
    return [(path, method, op) for path, ops in sorted(paths.items()) for method, op in ops.items() if method in METHODS]


def _properties(schema: dict, components: dict) -> list[str]:
    if "$ref" in schema:
        schema = components.get(schema["$ref"].split("/")[-1], {})
    names = list(schema.get("properties", {}))
    for sub in schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", []):
        names += _properties(sub, components)
    return names


OPERATIONS = _operations()
# 5xx found by this test in code other helpers own, reported to the lead; strict, so the mark
# must go as soon as the endpoint is fixed.
KNOWN_5XX: dict[tuple[str, str], str] = {}


def _param(path: str, method: str, operation: dict):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_5XX[(path, method)])] if (path, method) in KNOWN_5XX else []
    return pytest.param(path, method, operation, marks=marks, id=f"{method.upper()} {path}")


@pytest.mark.parametrize(("path", "method", "operation"), [_param(*o) for o in OPERATIONS])
@pytest.mark.django_db
def test_no_5xx_for_anything_a_client_can_send(path, method, operation, chatbot, api_key, alice):
    components = _schema().get("components", {}).get("schemas", {})
    query_names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    path_names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"]
    body_schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}))
    fields = sorted(set(_properties(body_schema, components)))
    bot = any("BotApiKey" in s for s in operation.get("security", [{}]))
    client = Client()
    if bot:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    elif path != "/api/v1/feedback":
        client.force_login(alice)

    shaped = st.fixed_dictionaries({}, optional={name: json_values for name in fields}) if fields else json_values

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(
        ids=st.fixed_dictionaries({n: st.one_of(st.integers(-5, 10**12).map(str), st.text(min_size=1, max_size=20),
                                                st.sampled_from(["\x00", "a\x00b", "\t", str(2**63)]))
                                   for n in path_names}),
        query=st.fixed_dictionaries({}, optional={n: texts_with_controls for n in query_names}),
        body=st.one_of(shaped, json_values, st.lists(shaped, max_size=3).map(lambda items: {"turns": items})),
    )
    def run(ids, query, body):
        url = path
        for name, value in ids.items():
            url = url.replace("{" + name + "}", quote(value, safe=""))
        if method == "get":
            response = client.get(url, query)
        else:
            response = getattr(client, method)(url + ("?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
                                                if query else ""), json.dumps(body), content_type="application/json")
        assert response.status_code < 500, (method, url, query, body, response.status_code, response.content[:500])

    run()


# --- OTLP (not in the OpenAPI schema): OTLP JSON shaped bodies with hostile values --------------

any_values = st.recursive(
    st.one_of(st.fixed_dictionaries({"stringValue": texts_with_controls}),
              st.fixed_dictionaries({"intValue": st.one_of(st.integers(-(2**64), 2**64).map(str), texts_with_controls)}),
              st.fixed_dictionaries({"doubleValue": st.floats(allow_nan=False, allow_infinity=False)}),
              st.fixed_dictionaries({"boolValue": st.booleans()})),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries({"values": st.lists(inner, max_size=3)})}),
        st.fixed_dictionaries({"kvlistValue": st.fixed_dictionaries({"values": st.lists(
            st.fixed_dictionaries({"key": texts_with_controls, "value": inner}), max_size=3)})})),
    max_leaves=6)
attribute_keys = st.one_of(texts_with_controls, st.sampled_from([
    "gen_ai.operation.name", "gen_ai.system", "gen_ai.conversation.id", "session.id", "user.id",
    "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.input.messages",
    "gen_ai.output.messages", "gen_ai.response.id", "error.type", "event.name"]))
attributes = st.lists(st.fixed_dictionaries({"key": attribute_keys, "value": any_values}), max_size=8)
hex_ids = st.one_of(st.binary(min_size=16, max_size=16).map(bytes.hex), st.just(""), texts_with_controls)
otlp_spans = st.fixed_dictionaries({"traceId": hex_ids, "spanId": st.binary(min_size=8, max_size=8).map(bytes.hex)},
                                   optional={"name": texts_with_controls, "attributes": attributes,
                                             "startTimeUnixNano": st.integers(0, 2**64).map(str),
                                             "endTimeUnixNano": st.integers(0, 2**64).map(str),
                                             "events": st.lists(st.fixed_dictionaries(
                                                 {"name": st.one_of(texts_with_controls, st.just("gen_ai.user.message")),
                                                  "attributes": attributes}), max_size=3)})
otlp_logs = st.fixed_dictionaries(
    {"traceId": st.binary(min_size=16, max_size=16).map(bytes.hex), "spanId": st.binary(min_size=8, max_size=8).map(bytes.hex)},
    optional={"eventName": st.one_of(texts_with_controls, st.sampled_from(["gen_ai.user.message", "gen_ai.choice"])),
              "body": any_values, "attributes": attributes, "timeUnixNano": st.integers(0, 2**64).map(str)})


@pytest.mark.django_db
def test_no_5xx_for_any_otlp_json_export(chatbot, api_key):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")

    @settings(max_examples=EXAMPLES * 2, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(path=st.sampled_from(["/v1/traces", "/v1/logs"]), resource=attributes,
           items=st.lists(st.one_of(otlp_spans, otlp_logs), min_size=1, max_size=4))
    def run(path, resource, items):
        if path == "/v1/traces":
            body = {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [{"spans": items}]}]}
        else:
            body = {"resourceLogs": [{"resource": {"attributes": resource}, "scopeLogs": [{"logRecords": items}]}]}
        response = client.post(path, json.dumps(body), content_type="application/json")
        assert response.status_code < 500, (path, body, response.status_code, response.content[:500])

    run()
