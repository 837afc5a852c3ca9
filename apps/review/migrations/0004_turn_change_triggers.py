"""Triggers that log every change to a turn as a StaleHour, whatever wrote it.

The hourly rollup must never show a figure its turns no longer support: a vote, a judge score,
a late turn, an erasure or a cascade delete can all touch an hour already summed. Django signals
miss `update()`, `bulk_create()` and raw SQL, so the database does the bookkeeping:
- PostgreSQL: statement-level triggers with transition tables, one small INSERT per statement
  (a 1,000-turn ingest batch adds one or two rows, not a thousand).
- SQLite (the embedded default): row-level triggers, the only kind it has.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE FUNCTION review_turn_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT DISTINCT chatbot_id, date_trunc('hour', "timestamp", 'UTC') FROM new_turns;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT chatbot_id, date_trunc('hour', "timestamp", 'UTC') FROM new_turns
        UNION SELECT chatbot_id, date_trunc('hour', "timestamp", 'UTC') FROM old_turns;
    ELSE
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT DISTINCT chatbot_id, date_trunc('hour', "timestamp", 'UTC') FROM old_turns;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_turn_inserted AFTER INSERT ON conversations_turn
    REFERENCING NEW TABLE AS new_turns FOR EACH STATEMENT EXECUTE FUNCTION review_turn_changed();
CREATE TRIGGER review_turn_updated AFTER UPDATE ON conversations_turn
    REFERENCING OLD TABLE AS old_turns NEW TABLE AS new_turns FOR EACH STATEMENT EXECUTE FUNCTION review_turn_changed();
CREATE TRIGGER review_turn_deleted AFTER DELETE ON conversations_turn
    REFERENCING OLD TABLE AS old_turns FOR EACH STATEMENT EXECUTE FUNCTION review_turn_changed();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS review_turn_inserted ON conversations_turn;
DROP TRIGGER IF EXISTS review_turn_updated ON conversations_turn;
DROP TRIGGER IF EXISTS review_turn_deleted ON conversations_turn;
DROP FUNCTION IF EXISTS review_turn_changed();
"""

# Django stores SQLite datetimes as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
_SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00', {row}.\"timestamp\")"
SQLITE_FORWARD = [
    f"""CREATE TRIGGER review_turn_inserted AFTER INSERT ON conversations_turn BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour) VALUES (NEW.chatbot_id, {_SQLITE_HOUR.format(row="NEW")});
    END""",
    f"""CREATE TRIGGER review_turn_updated AFTER UPDATE ON conversations_turn BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour) VALUES (NEW.chatbot_id, {_SQLITE_HOUR.format(row="NEW")});
        INSERT INTO review_stalehour (chatbot_id, hour) SELECT OLD.chatbot_id, {_SQLITE_HOUR.format(row="OLD")}
            WHERE OLD.chatbot_id != NEW.chatbot_id OR {_SQLITE_HOUR.format(row="OLD")} != {_SQLITE_HOUR.format(row="NEW")};
    END""",
    f"""CREATE TRIGGER review_turn_deleted AFTER DELETE ON conversations_turn BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour) VALUES (OLD.chatbot_id, {_SQLITE_HOUR.format(row="OLD")});
    END""",
]
SQLITE_REVERSE = [f"DROP TRIGGER IF EXISTS review_turn_{event}" for event in ("inserted", "updated", "deleted")]


def _run(statements: dict[str, str | list[str]]):
    def run(apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor not in statements:
            raise NotImplementedError(f"chatmon's turn-change triggers support PostgreSQL and SQLite, not {vendor}")
        sql = statements[vendor]
        for statement in [sql] if isinstance(sql, str) else sql:
            schema_editor.execute(statement, params=None)  # no %-interpolation: strftime uses %

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0003_hourly_stats"),
        ("conversations", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
