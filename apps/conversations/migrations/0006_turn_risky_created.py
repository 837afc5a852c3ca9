"""A small partial index for the risk alert sweep (apps.alerts.risk_alerts.risk_turns_sweep).

It holds only flagged high/critical turns, by storage time, so the minute check finds the
risky turns whose report never ran without reading the turn table. On PostgreSQL it is built
CONCURRENTLY (not in a transaction) so an upgrade does not block ingest while it scans
existing turns; elsewhere the schema editor builds it as usual.
"""

from django.db import migrations, models

INDEX = models.Index(
    fields=["created_at"],
    name="turn_risky_created",
    condition=models.Q(is_flagged=True, risk_level__in=["high", "critical"]),
)


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        schema_editor.execute(self.index.create_sql(model, schema_editor, concurrently=True))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        schema_editor.execute(self.index.remove_sql(model, schema_editor, concurrently=True))


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("conversations", "0005_turn_text_trigram")]
    operations = [AddIndexConcurrentlyOnPostgres(model_name="turn", index=INDEX)]
