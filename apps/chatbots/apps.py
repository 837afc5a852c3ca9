from django.apps import AppConfig


class ChatbotsConfig(AppConfig):
    name = "apps.chatbots"
    label = "chatbots"

    def ready(self) -> None:
        from .api import schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
