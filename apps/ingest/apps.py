from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "apps.ingest"
    label = "ingest"

    def ready(self) -> None:
        from . import pricing  # noqa: F401 - connects the price-cache invalidation signals
        from .api import schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
