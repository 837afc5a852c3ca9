"""Dashboard gauges for /metrics (read from the database at scrape time)."""

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from apps.core.metrics import stored_gauge

from .models import HourlyStatsState


@stored_gauge
def dashboard_rollup_lag():
    # Grows past an hour when beat stops refreshing the rollup: figures stay exact (more is
    # read live), long dashboard windows get slower.
    lag = GaugeMetricFamily(
        "chatmon_dashboard_rollup_lag_seconds", "Time since the end of the last hour summed into the dashboard rollup"
    )
    summed_until = HourlyStatsState.objects.values_list("materialized_until", flat=True).first()
    if summed_until is not None:
        lag.add_metric([], (timezone.now() - summed_until).total_seconds())
    yield lag
