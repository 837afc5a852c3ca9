"""The OpenAPI schema and apps/ingest/validation.py describe the same ingest contract.

Validation is hand-written for speed; the schema comes from apps/ingest/api/serializers.py.
Both directions are checked:

1. Every field the validator reads (found in parse_turn / parse_call by AST, so a new field
   cannot be forgotten) is in the schema with the limits the validator applies, and the
   schema has no field the validator ignores.
2. Every limit the schema states holds in the validator: at the limit accepted, past it
   rejected (probed through parse_turn / parse_call / parse_step), and required means required.
3. Every alias the validator reads (camelCase, `source`, `sessionId`) is in the schema as its
   field is, and is read as that field.
"""

import ast
import contextlib
import inspect
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from apps.core.text import NO_CONTROL_CHARACTERS
from apps.ingest import validation
from apps.ingest.validation import ValidationFailed, parse_call, parse_step, parse_turn

# The schema components of the ingest requests, and what parses one of them.
TURN, CALL, STANDALONE, TOKENS = "TurnInRequest", "LLMCallInRequest", "LLMCallStandaloneRequest", "TokensRequest"
STEP = "StepInRequest"
READERS = {"identifier", "label", "text", "content", "integer", "boolean", "error_field", "money", "timestamp", "metadata",
           "choice", "optional_boolean"}
NESTED = {"tokens", "llm_calls"}
ALIASES = {"turn": validation.TURN_ALIASES, "step": validation.STEP_ALIASES, "standalone": validation.CALL_ALIASES,
           "call": {a: c for a, c in validation.CALL_ALIASES.items() if c not in ("conversation_id", "turn_id")},
           "tokens": {}}


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


def _evaluate(node: ast.AST, local: dict[str, Any] | None = None) -> Any:
    namespace = vars(validation) | {"settings": settings} | (local or {})
    return eval(compile(ast.Expression(node), "<validation>", "eval"), namespace)  # noqa: S307


def _validator_fields(function) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """{variant: {field: (reader, keyword arguments)}} read by `function`.

    Variants: "turn"/"tokens" for parse_turn; "call" and "standalone" for parse_call (fields
    read only `if standalone` belong to the standalone variant). `present("tokens")` and
    `present("llm_calls")` are the nested fields.
    """
    tree = ast.parse(inspect.getsource(function))
    found: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    local: dict[str, Any] = {}  # `max_text = settings.…` and the like
    for statement in tree.body[0].body:  # type: ignore[attr-defined]
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            with contextlib.suppress(Exception):  # not a constant: not a limit
                local[statement.targets[0].id] = _evaluate(statement.value)

    def visit(node: ast.AST, standalone_only: bool) -> None:
        # A helper reading a list of nested objects: `_steps_read(r, "steps", …)`.
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("_")
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id == "r"
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            found.setdefault(function.__name__.removeprefix("parse_"), {})[node.args[1].value] = ("nested", {})
        if isinstance(node, ast.IfExp) and isinstance(node.test, ast.Name) and node.test.id == "standalone":
            visit(node.body, True)
            visit(node.orelse, standalone_only)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            reader, method = node.func.value.id, node.func.attr
            if method in READERS | {"present"}:
                name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "metadata"
                if method != "present" or name in ("tokens", "llm_calls"):
                    keywords = {k.arg: k.value for k in node.keywords if k.arg}
                    if method == "boolean":
                        keywords["default"] = node.args[1]
                    limits = {k: _evaluate(v, local) for k, v in keywords.items() if k != "required"}
                    if "required" in keywords:
                        required = keywords["required"]
                        limits["required"] = isinstance(required, ast.Name) or _evaluate(required)
                    variant = "tokens" if reader == "tr" else function.__name__.removeprefix("parse_")
                    targets = ["standalone"] if standalone_only else (
                        ["call", "standalone"] if variant == "call" else [variant])
                    for target in targets:
                        found.setdefault(target, {})[name] = (method, limits)
        for child in ast.iter_child_nodes(node):
            visit(child, standalone_only)

    visit(tree, False)
    return found


VALIDATOR = {**_validator_fields(parse_turn), **_validator_fields(parse_call), **_validator_fields(parse_step)}
SCHEMA_OF = {"turn": TURN, "tokens": TOKENS, "call": CALL, "standalone": STANDALONE, "step": STEP}


def _alternatives(prop: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A property's schema by JSON type (one entry unless it is a oneOf). The empty-string
    alternative drf-spectacular adds beside a pattern is the pattern field's blank: folded in."""
    options = prop.get("oneOf", [prop])
    blank = {"type": "string", "maxLength": 0}
    patterned = any(o.get("type") == "string" and "pattern" in o for o in options)
    return {option.get("type", "$ref"): option for option in options if not (patterned and option == blank)}


def _expected(reader: str, limits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the schema must say for a field the validator reads this way, by JSON type."""
    if reader == "identifier":
        return {"string": {"minLength": 1, "maxLength": validation.MAX_ID_CHARS, "pattern": NO_CONTROL_CHARACTERS}}
    if reader == "label":
        return {"string": {"maxLength": limits["max_chars"], "pattern": NO_CONTROL_CHARACTERS}}
    if reader == "text":
        return {"string": {"maxLength": limits["max_chars"], "pattern": None}}
    if reader == "content":
        return {"string": {"maxLength": limits["max_chars"]}, "array": {}, "object": {}}
    if reader == "integer":
        return {"integer": {"minimum": 0, "maximum": limits["maximum"]}}
    if reader == "boolean":
        return {"boolean": {"default": limits["default"]}}
    if reader == "error_field":
        return {"boolean": {}, "string": {"maxLength": validation.MAX_ERROR_CHARS}}
    if reader == "money":
        return {"number": {"minimum": 0, "maximum": validation.MAX_COST_USD}, "string": {}}
    if reader == "timestamp":
        return {"string": {"format": "date-time"}}
    if reader == "metadata":
        return {"object": {}}
    if reader == "optional_boolean":
        return {"boolean": {}}
    raise AssertionError(f"unknown reader {reader}")


@pytest.mark.parametrize("variant", sorted(SCHEMA_OF))
def test_the_schema_has_exactly_the_fields_the_validator_reads(components, variant):
    schema = components[SCHEMA_OF[variant]]
    assert set(schema["properties"]) == set(VALIDATOR[variant]) | set(ALIASES[variant])


@pytest.mark.parametrize("variant", sorted(SCHEMA_OF))
def test_each_alias_is_its_field_under_another_name(components, variant):
    properties = components[SCHEMA_OF[variant]]["properties"]
    for alias, canonical in ALIASES[variant].items():
        assert canonical in VALIDATOR[variant], f"{alias} names {canonical}, which the validator does not read"
        strip = lambda prop: {k: v for k, v in prop.items() if k != "description"}  # noqa: E731
        assert strip(properties[alias]) == strip(properties[canonical]), alias
        assert canonical in properties[alias]["description"]


def _enum(components, prop: dict[str, Any]) -> list[str]:
    ref = prop.get("$ref") or prop["allOf"][0]["$ref"]
    return components[ref.rsplit("/", 1)[1]]["enum"]


@pytest.mark.parametrize("variant", sorted(SCHEMA_OF))
def test_required_fields_agree(components, variant):
    required = {name for name, (_, limits) in VALIDATOR[variant].items() if limits.get("required")}
    assert set(components[SCHEMA_OF[variant]].get("required", [])) == required


@pytest.mark.parametrize(
    ("variant", "field"), [(v, f) for v in sorted(SCHEMA_OF) for f in sorted(VALIDATOR[v])]
)
def test_each_field_has_the_validators_types_and_limits(components, variant, field):
    reader, limits = VALIDATOR[variant][field]
    prop = components[SCHEMA_OF[variant]]["properties"][field]
    if reader == "choice":
        assert _enum(components, prop) == list(limits["choices"])
        return
    if reader == "nested":
        if field == "outcome":
            assert prop["oneOf"][0]["enum"] == list(validation.OUTCOME_NAMES)
        else:
            assert prop["type"] == "array" and prop["maxItems"] == validation.MAX_STEPS_PER_TURN
            if field == "steps":
                assert prop["items"]["$ref"].endswith(STEP)
        return
    if reader == "present":
        if field == "tokens":
            assert prop["allOf"][0]["$ref"].endswith(TOKENS)
        else:
            assert prop["type"] == "array" and prop["items"]["$ref"].endswith(CALL)
            assert prop["maxItems"] == validation.MAX_CALLS_PER_TURN
        return
    stated = _alternatives(prop)
    expected = _expected(reader, limits)
    assert set(stated) == set(expected), f"{field}: types {sorted(stated)} != {sorted(expected)}"
    for kind, wanted in expected.items():
        for key, value in wanted.items():
            assert stated[kind].get(key) == value, f"{field} ({kind}): {key} {stated[kind].get(key)!r} != {value!r}"
        if kind == "string" and "minLength" not in wanted:
            assert "minLength" not in stated[kind], f"{field}: the validator accepts a blank string"
    description = prop.get("description", "")
    if reader == "timestamp":
        assert f"{settings.INGEST_MAX_FUTURE_SECONDS} s" in description and "2000-01-01" in description
    if reader == "metadata":
        assert str(settings.INGEST_MAX_METADATA_BYTES) in description


def test_batches_state_the_views_limits(components):
    for name, key in (("TurnBatchRequest", "turns"), ("LLMCallBatchRequest", "llm_calls")):
        prop = components[name]["properties"][key]
        assert (prop["minItems"], prop["maxItems"]) == (1, settings.INGEST_MAX_BATCH)


# --- the reverse: the schema's limits hold in the validator ---------------------------------

MINIMAL = {
    TURN: {"conversation_id": "c", "user_message": "hi"},
    CALL: {},
    STANDALONE: {"conversation_id": "c"},
    STEP: {},
}
ALIASES_OF = {TURN: ALIASES["turn"], CALL: ALIASES["call"], STANDALONE: ALIASES["standalone"], STEP: ALIASES["step"]}


def _errors(component: str, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        if component == TURN:
            parse_turn(payload)
        elif component == STEP:
            parse_step(payload)
        else:
            parse_call(payload, standalone=component == STANDALONE)
    except ValidationFailed as exc:
        return exc.errors
    return {}


def _probes(prop: dict[str, Any]) -> list[tuple[Any, bool]]:
    """(value, accepted?) pairs at and past each limit the property states."""
    probes: list[tuple[Any, bool]] = []
    for kind, option in _alternatives(prop).items():
        if kind == "string" and option.get("format") == "date-time":
            skew = settings.INGEST_MAX_FUTURE_SECONDS
            probes += [((timezone.now() + timedelta(seconds=skew - 30)).isoformat(), True),
                       ((timezone.now() + timedelta(seconds=skew + 30)).isoformat(), False),
                       ("2000-01-01T00:00:00Z", True), ("1999-12-31T23:59:59Z", False)]
        elif kind == "string" and "maxLength" in option:
            n = option["maxLength"]
            probes += [("x" * n, True), ("x" * (n + 1), False), ("", option.get("minLength", 0) == 0)]
            # The alphabet: a pattern forbids control characters; free text takes them (NUL → U+FFFD).
            probes += [("a\x00b", "pattern" not in option), ("a\tb", "pattern" not in option)]
        elif kind in ("integer", "number"):
            top = option["maximum"]
            probes += [(option["minimum"], True), (-1, False), (top if kind == "integer" else str(top), True),
                       (top + 1 if kind == "integer" else str(Decimal(top) + Decimal("0.01")), False)]
        elif kind == "boolean":
            probes += [(True, True), (False, True)]
    return probes


@pytest.mark.parametrize("component", [TURN, CALL, STANDALONE, STEP])
def test_the_validator_enforces_every_limit_the_schema_states(components, component):
    failures = []
    for field, prop in components[component]["properties"].items():
        canonical = ALIASES_OF[component].get(field, field)  # an alias is probed in its field's place
        for value, accepted in _probes(prop):
            base = {k: v for k, v in MINIMAL[component].items() if k != canonical}
            errors = _errors(component, {**base, field: value})
            if (canonical not in errors) != accepted:
                failures.append(f"{field}={str(value)[:40]!r}: schema says {'accept' if accepted else 'reject'}")
    assert not failures, "\n".join(failures)


def test_the_validator_enforces_the_nested_limits(components):
    failures = []
    for field, prop in components[TOKENS]["properties"].items():
        for value, accepted in _probes(prop):
            errors = _errors(TURN, {**MINIMAL[TURN], "tokens": {field: value}})
            if (field not in errors.get("tokens", {})) != accepted:
                failures.append(f"tokens.{field}={value!r}: schema says {'accept' if accepted else 'reject'}")
    assert not failures, "\n".join(failures)
    most = components[TURN]["properties"]["llm_calls"]["maxItems"]
    assert "llm_calls" not in _errors(TURN, {**MINIMAL[TURN], "llm_calls": [{}] * most})
    assert "llm_calls" in _errors(TURN, {**MINIMAL[TURN], "llm_calls": [{}] * (most + 1)})


@pytest.mark.parametrize("component", [TURN, STANDALONE])
def test_required_means_required(components, component):
    for field in components[component]["required"]:
        payload = {k: v for k, v in MINIMAL[component].items() if k != field}
        assert field in _errors(component, payload)


def test_purpose_stands_in_for_function_name():
    assert parse_call({"purpose": "classify"}, standalone=False).function_name == "classify"
    assert parse_call({"purpose": "a", "function_name": "b"}, standalone=False).function_name == "b"


def test_the_served_schema_is_the_generated_one(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    served = response.json()["components"]["schemas"]
    assert served[TURN] == SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"][TURN]
