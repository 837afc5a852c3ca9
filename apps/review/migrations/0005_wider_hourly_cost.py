"""The hourly cost column holds the sums of the widened turn totals (issue 15 §4), and the SQLite
turn triggers come back after conversations 0008 rebuilt conversations_turn (a SQLite table
rebuild drops the triggers of the table it replaces; PostgreSQL keeps them on ALTER)."""

import importlib

from django.db import migrations, models

_triggers = importlib.import_module("apps.review.migrations.0004_turn_change_triggers")


def _sqlite_triggers_recreate(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in _triggers.SQLITE_REVERSE + _triggers.SQLITE_FORWARD:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0004_turn_change_triggers"),
        ("conversations", "0008_wider_totals"),
    ]

    operations = [
        migrations.AlterField(
            model_name="hourlyturnstats",
            name="cost",
            field=models.DecimalField(decimal_places=6, default=0, max_digits=24),
        ),
        migrations.RunPython(_sqlite_triggers_recreate, migrations.RunPython.noop),
    ]
