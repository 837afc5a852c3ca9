from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        from .receivers import audit_receivers_connect

        audit_receivers_connect()
