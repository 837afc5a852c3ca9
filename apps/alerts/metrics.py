"""Alert gauges for /metrics (read from the database at scrape time)."""

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from apps.core.metrics import stored_gauge

from .models import AlertRule


@stored_gauge
def alert_rule_states():
    rules = GaugeMetricFamily("chatmon_alert_rules", "Enabled alert rules by state", labels=["state"])
    for row in AlertRule.objects.filter(is_enabled=True).values("state").annotate(n=Count("id")):
        rules.add_metric([row["state"]], row["n"])
    yield rules
