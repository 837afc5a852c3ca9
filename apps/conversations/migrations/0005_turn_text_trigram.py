"""A trigram index for the review queue's free-text search (PostgreSQL only).

`conversation_search` matches turn text with Django's `icontains`, which PostgreSQL runs as
`UPPER(column) LIKE UPPER('%term%')`: a GIN index of `pg_trgm` trigrams on exactly those
expressions answers it without reading every turn. Built CONCURRENTLY (so not in a
transaction) because an upgrade may run against millions of existing turns while ingest goes on.
pg_trgm ships with PostgreSQL's contrib package and is a trusted extension (PostgreSQL 13+): the
database owner may create it.

What it costs (bench/ingest.py --without text-index, docs/BENCHMARKS.md): about a fifth of
batch-ingest throughput on a 2-core machine that also runs PostgreSQL, a few percent for single
turns. A GiST trigram index (siglen 256) was measured too: slower still to write. A deployment
that never searches text can drop it (`DROP INDEX CONCURRENTLY turn_text_trgm`); search then
still works, by reading the turns.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS turn_text_trgm ON conversations_turn"
    " USING gin (UPPER(user_message) gin_trgm_ops, UPPER(bot_response) gin_trgm_ops)",
    # Statistics of the indexed expressions let the planner tell a rare term (read the index)
    # from a common one (check each flagged conversation's turns instead).
    "ANALYZE conversations_turn",
]
REVERSE = ["DROP INDEX CONCURRENTLY IF EXISTS turn_text_trgm"]


def _postgres_only(statements: list[str]):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return  # SQLite (the embedded demo default) scans: its data is small
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("conversations", "0004_conversation_has_early_calls")]
    operations = [migrations.RunPython(_postgres_only(FORWARD), _postgres_only(REVERSE))]
