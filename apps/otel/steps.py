"""OTLP spans that are steps of a turn (a tool call, a SQL query, a retrieval) → the REST API's
raw step dicts. Pure functions, like spans.py; services.py stores what comes out.

Which spans are steps (`span_step_kind`):
- tool: gen_ai.operation.name execute_tool, OpenInference TOOL, Langfuse `tool`, OpenLLMetry
  traceloop.span.kind tool (conventions.py maps all four to the operation execute_tool);
- retrieval: OpenInference RETRIEVER, Langfuse `retriever` (the operation retrieve) and
  gen_ai.operation.name retrieval / retrieve;
- sql: a database client span, db.system (db.system.name in the current conventions) with its
  query text in db.query.text (db.statement in the older ones): the operation `db_query`.
A step span is never an LLM call: no model, no tokens, no price.
"""

import json
from typing import Any

from apps.core.text import ascii_int
from apps.ingest.validation import MAX_LATENCY_MS

from .conventions import convention_text
from .mapping import first_of, int_of

DB_OPERATION = "db_query"
STEP_KINDS_BY_OPERATION = {
    "execute_tool": "tool",
    "retrieve": "retrieval",
    "retrieval": "retrieval",
    DB_OPERATION: "sql",
}
DB_SYSTEM_ATTRIBUTES = ("db.system.name", "db.system")
DB_QUERY_ATTRIBUTES = ("db.query.text", "db.statement")
DB_ROWS_ATTRIBUTES = (
    "db.response.returned_rows",
    "db.rows_returned",
    "db.rows_affected",
    "db.row_count",
)
_INDEX_MAX = 9_999
_DOCUMENTS_KEPT = 20


def db_operation(attributes: dict[str, Any]) -> str:
    """`db_query` for a database client span that says what it ran, else ""."""
    if first_of(attributes, *DB_SYSTEM_ATTRIBUTES) and first_of(attributes, *DB_QUERY_ATTRIBUTES):
        return DB_OPERATION
    return ""


def span_step_kind(operation: str) -> str | None:
    return STEP_KINDS_BY_OPERATION.get(operation)


def span_step_raw(span: Any, *, error: str) -> dict[str, Any]:
    """A step span as a raw step (apps.ingest.validation.parse_step), its id the span key."""
    attributes = span.attributes
    kind = STEP_KINDS_BY_OPERATION[span.operation]
    duration_ns = span.end_ns - span.start_ns
    rows: int | None = None
    if kind == "sql":
        name = (
            first_of(attributes, "db.query.summary", "db.operation.name", "db.operation")
            or span.name
        )
        collection = first_of(attributes, "db.collection.name", "db.sql.table")
        if collection and str(collection) not in str(name):
            name = f"{name} {collection}"
        input_text = str(first_of(attributes, *DB_QUERY_ATTRIBUTES) or "")
        output_text = ""
        rows = int_of(attributes, *DB_ROWS_ATTRIBUTES)
    elif kind == "retrieval":
        name = (
            first_of(attributes, "gen_ai.data_source.id", "retriever.name", "traceloop.entity.name")
            or span.name
        )
        input_text = str(
            first_of(attributes, "gen_ai.retrieval.query.text", "gen_ai.retrieval.query")
            or convention_text(attributes, output=False)
        )
        documents = _retrieval_documents(attributes)
        output_text = (
            json.dumps(documents[:_DOCUMENTS_KEPT], ensure_ascii=False)
            if documents
            else (convention_text(attributes, output=True))
        )
        rows = (
            len(documents) if documents else int_of(attributes, "gen_ai.retrieval.documents.count")
        )
    else:
        name = (
            first_of(attributes, "gen_ai.tool.name", "tool.name", "traceloop.entity.name")
            or span.name
        )
        # OpenInference's tool.parameters is the tool's JSON schema: the call's arguments are input.value.
        input_text = str(
            first_of(attributes, "gen_ai.tool.call.arguments")
            or convention_text(attributes, output=False)
            or first_of(attributes, "tool.parameters")
            or ""
        )
        output_text = str(
            first_of(attributes, "gen_ai.tool.call.result")
            or convention_text(attributes, output=True)
        )
    otel = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "span_name": span.name[:200],
        "db_system": str(first_of(attributes, *DB_SYSTEM_ATTRIBUTES) or "")[:50],
        "tool_call_id": str(first_of(attributes, "gen_ai.tool.call.id", "tool_call.id") or "")[
            :200
        ],
        "service_name": str(span.resource.get("service.name") or "")[:200],
    }
    raw: dict[str, Any] = {
        "kind": kind,
        "name": str(name)[:200],
        "input": input_text,
        "output": output_text,
        "duration_ms": min(duration_ns // 1_000_000, MAX_LATENCY_MS)
        if span.end_ns and duration_ns >= 0
        else None,
        "success": not error,
        "error": error[:4000] if error else False,
        "metadata": {"otel": {k: v for k, v in otel.items() if v}},
    }
    if rows is not None and rows >= 0:
        raw["rows"] = rows
    return raw


def _retrieval_documents(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenInference's retrieval.documents.N.document.id|content|score, in order."""
    found: dict[int, dict[str, Any]] = {}
    prefix = "retrieval.documents."
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split(".", 2)
        if len(parts) != 3 or parts[1] != "document" or parts[2] not in ("id", "content", "score"):
            continue
        index = ascii_int(parts[0], maximum=_INDEX_MAX)
        if index is not None:
            found.setdefault(index, {})[parts[2]] = value
    return [found[i] for i in sorted(found)]
