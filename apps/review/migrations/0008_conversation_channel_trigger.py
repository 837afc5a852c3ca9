"""A conversation whose channel changes marks the hours of all its turns stale.

The breakdown by channel (HourlyDimensionStats) groups turns by their conversation's channel,
which ingest may set after the first turns were summed (a later turn names it). The turn
triggers of 0004 do not see that, so this one does: exact, whatever code path wrote it.
- PostgreSQL: a statement-level trigger with transition tables; the join finds nothing (and
  costs a hash of the batch) unless a channel really changed.
- SQLite: a row-level trigger on the channel column.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE FUNCTION review_conversation_channel_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_stalehour (chatbot_id, hour)
    SELECT DISTINCT t.chatbot_id, date_trunc('hour', t."timestamp", 'UTC')
    FROM new_conversations n
    JOIN old_conversations o ON o.id = n.id
    JOIN conversations_turn t ON t.conversation_id = n.id
    WHERE o.channel IS DISTINCT FROM n.channel;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_conversation_channel_updated AFTER UPDATE ON conversations_conversation
    REFERENCING OLD TABLE AS old_conversations NEW TABLE AS new_conversations
    FOR EACH STATEMENT EXECUTE FUNCTION review_conversation_channel_changed();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS review_conversation_channel_updated ON conversations_conversation;
DROP FUNCTION IF EXISTS review_conversation_channel_changed();
"""

SQLITE_FORWARD = [
    """CREATE TRIGGER review_conversation_channel_updated AFTER UPDATE OF channel ON conversations_conversation
        WHEN OLD.channel IS NOT NEW.channel BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT DISTINCT chatbot_id, strftime('%Y-%m-%d %H:00:00', "timestamp") FROM conversations_turn
        WHERE conversation_id = NEW.id;
    END""",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS review_conversation_channel_updated"]


def _run(statements: dict[str, str | list[str]]):
    def run(apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor not in statements:
            raise NotImplementedError(f"chatmon's conversation triggers support PostgreSQL and SQLite, not {vendor}")
        sql = statements[vendor]
        for statement in [sql] if isinstance(sql, str) else sql:
            schema_editor.execute(statement, params=None)  # no %-interpolation: strftime uses %

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0007_hourly_dimension_stats"),
        ("conversations", "0014_turn_conversation_release"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
