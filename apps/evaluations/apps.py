from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "apps.evaluations"
    label = "evaluations"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401 - registers the system checks
            metrics,  # noqa: F401 - registers its /metrics gauges
        )
