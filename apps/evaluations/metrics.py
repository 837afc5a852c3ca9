"""Judge gauges for /metrics (read from the database at scrape time)."""

from prometheus_client.core import GaugeMetricFamily

from apps.conversations.models import Turn
from apps.core.metrics import stored_gauge


@stored_gauge
def judge_pending_turns():
    pending = GaugeMetricFamily("chatmon_judge_pending_turns", "Sampled turns waiting for the judge")
    pending.add_metric([], Turn.objects.filter(judge_status="pending").count())
    yield pending
