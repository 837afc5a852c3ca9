"""The activity indexes gain is_flagged as a last column, so the dashboard's conversation counts
(total and flagged per period, review_selectors._conversation_counts) are index-only scans: at
10,000,000 turns (2,000,000 conversations) the 30-day count read the table for 1.5 s.

On PostgreSQL the new indexes are built CONCURRENTLY before the old ones are dropped, so an
upgrade never blocks ingest and the dashboard is never without an index; elsewhere the schema
editor does it as usual (0006's operation).
"""

import importlib

from django.db import migrations, models

AddIndexConcurrentlyOnPostgres = importlib.import_module(
    "apps.conversations.migrations.0006_turn_risky_created"
).AddIndexConcurrentlyOnPostgres


class RemoveIndexConcurrentlyOnPostgres(migrations.RemoveIndex):
    def _concurrently(self, app_label, schema_editor, state, statement: str) -> None:
        """Run the index's `statement` ("remove_sql" or "create_sql") CONCURRENTLY, the index as
        declared in `state`, the state it exists in."""
        model = state.apps.get_model(app_label, self.model_name)
        index = state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        schema_editor.execute(getattr(index, statement)(model, schema_editor, concurrently=True))

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        self._concurrently(app_label, schema_editor, from_state, "remove_sql")

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        self._concurrently(app_label, schema_editor, to_state, "create_sql")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("conversations", "0015_conversation_last_turn_signals")]
    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="conversation",
            index=models.Index(fields=["-last_activity_at", "is_flagged"], name="conv_activity_flagged"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="conversation",
            index=models.Index(fields=["chatbot", "-last_activity_at", "is_flagged"],
                               name="conv_chatbot_activity_flagged"),
        ),
        RemoveIndexConcurrentlyOnPostgres(model_name="conversation", name="conv_activity"),
        RemoveIndexConcurrentlyOnPostgres(model_name="conversation", name="conv_chatbot_activity"),
    ]
