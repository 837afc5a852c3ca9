from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "apps.review"
    label = "review"

    def ready(self) -> None:
        from . import metrics  # noqa: F401 - registers its /metrics gauges
