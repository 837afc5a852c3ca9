"""Preset rules from common practice, created disabled and without channels.

An operator reviews them in the admin, adds channels and enables the ones that fit. The values
are frozen here (not imported) so later code changes cannot alter what this migration did.
"""

from django.db import migrations

PRESETS = [
    {
        "name": "Preset: more than 5 fallbacks in 10 minutes",
        "metric": "fallback_count", "comparison": "gt", "threshold": 5, "window_minutes": 10,
        "min_samples": 1, "renotify_minutes": 60, "severity": "warning",
    },
    {
        "name": "Preset: error rate above 5% in the last hour",
        "metric": "error_rate", "comparison": "gt", "threshold": 5, "window_minutes": 60,
        "min_samples": 20, "renotify_minutes": 60, "severity": "critical",
    },
    {
        "name": "Preset: more than 10% of turns slower than 3,000 ms",
        "metric": "slow_share", "comparison": "gt", "threshold": 10, "window_minutes": 15,
        "min_samples": 20, "slow_ms": 3000, "renotify_minutes": 60, "severity": "warning",
    },
]


def create_presets(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    for preset in PRESETS:
        fields = dict(preset)
        name = fields.pop("name")
        AlertRule.objects.get_or_create(name=name, chatbot=None, defaults={**fields, "is_enabled": False})


def remove_presets(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(name__in=[p["name"] for p in PRESETS], is_enabled=False, channels=None).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0002_risk_events")]

    operations = [migrations.RunPython(create_presets, remove_presets)]
