from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "apps.ingest"
    label = "ingest"

    def ready(self) -> None:
        from . import pricing  # noqa: F401 - connects the price-cache invalidation signals
