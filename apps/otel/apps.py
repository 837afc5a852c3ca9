from django.apps import AppConfig


class OtelConfig(AppConfig):
    name = "apps.otel"
    label = "otel"
