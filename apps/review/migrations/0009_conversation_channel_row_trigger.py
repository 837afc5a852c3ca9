"""The conversation channel trigger of 0008, row-level on PostgreSQL too.

0008's statement-level trigger kept OLD and NEW transition tables of every conversation that
any UPDATE touched — and every ingest request updates its conversations' summaries — only to
join them and find that no channel changed (measured: ~0.09 ms of PostgreSQL per single turn).
A row-level trigger whose WHEN compares the channels costs nothing unless one really changed:
PostgreSQL checks the WHEN before queuing the event, and keeps no transition tables. What it
writes is unchanged: the hours of the conversation's turns become stale. SQLite keeps 0008's.
"""

from django.db import migrations

POSTGRES_FORWARD = """
DROP TRIGGER IF EXISTS review_conversation_channel_updated ON conversations_conversation;
DROP FUNCTION IF EXISTS review_conversation_channel_changed();
CREATE FUNCTION review_conversation_channel_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_stalehour (chatbot_id, hour)
    SELECT DISTINCT t.chatbot_id, date_trunc('hour', t."timestamp", 'UTC')
    FROM conversations_turn t WHERE t.conversation_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_conversation_channel_updated AFTER UPDATE OF channel ON conversations_conversation
    FOR EACH ROW WHEN (OLD.channel IS DISTINCT FROM NEW.channel)
    EXECUTE FUNCTION review_conversation_channel_changed();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS review_conversation_channel_updated ON conversations_conversation;
DROP FUNCTION IF EXISTS review_conversation_channel_changed();
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


def _run(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("review", "0008_conversation_channel_trigger")]

    operations = [migrations.RunPython(_run(POSTGRES_FORWARD), _run(POSTGRES_REVERSE))]
