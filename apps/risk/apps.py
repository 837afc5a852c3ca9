from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"

    def ready(self) -> None:
        from . import scoring  # noqa: F401 - connects the rule-cache invalidation signals
