"""HourlyTurnStats counts the turns whose grade assessed hallucination: the hallucination rate's
denominator in the metric catalogue (apps.conversations.metrics_catalogue). The rows summed before
this column existed would read 0 for it, so the rollup starts over: the next refresh re-sums
every hour from the turns (MAX_ADVANCE per run) and reads fall back to the turns meanwhile."""

from django.db import migrations, models


def _rollup_restart(apps, schema_editor) -> None:
    for name in ("HourlyTurnStats", "HourlyLatencyBucket", "StaleHour"):
        apps.get_model("review", name).objects.all().delete()
    apps.get_model("review", "HourlyStatsState").objects.update(materialized_until=None)


class Migration(migrations.Migration):
    dependencies = [("review", "0005_wider_hourly_cost")]

    operations = [
        migrations.AddField(
            model_name="hourlyturnstats",
            name="hallucination_checked",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(_rollup_restart, migrations.RunPython.noop),
    ]
