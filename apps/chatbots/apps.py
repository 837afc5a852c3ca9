from django.apps import AppConfig


class ChatbotsConfig(AppConfig):
    name = "apps.chatbots"
    label = "chatbots"
