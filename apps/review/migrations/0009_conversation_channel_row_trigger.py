"""The conversation channel trigger of 0008, row-level on PostgreSQL too.

0008's statement-level trigger kept OLD and NEW transition tables of every conversation that
any UPDATE touched — and every ingest request updates its conversations' summaries — only to
join them and find that no channel changed (measured: ~0.09 ms of PostgreSQL per single turn).
A row-level trigger whose WHEN compares the channels costs nothing unless one really changed:
PostgreSQL checks the WHEN before queuing the event, and keeps no transition tables. What it
writes is unchanged: the hours of the conversation's turns become stale. SQLite keeps 0008's.
"""

import importlib

from django.db import migrations

_0008 = importlib.import_module("apps.review.migrations.0008_conversation_channel_trigger")

ROW_TRIGGER = """
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


class Migration(migrations.Migration):
    dependencies = [("review", "0008_conversation_channel_trigger")]

    # 0008's DROP statements remove whichever of the two triggers is there.
    operations = [
        migrations.RunPython(
            _0008._run({"postgresql": _0008.POSTGRES_REVERSE + ROW_TRIGGER, "sqlite": []}),
            _0008._run({"postgresql": _0008.POSTGRES_REVERSE + _0008.POSTGRES_FORWARD, "sqlite": []}),
        ),
    ]
