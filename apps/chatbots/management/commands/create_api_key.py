from django.core.management.base import BaseCommand, CommandError

from apps.chatbots.models import Chatbot
from apps.chatbots.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a chatbot and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("chatbot_slug")
        parser.add_argument("--name", default="default", help="A label for the key, e.g. 'production'.")

    def handle(self, *args, chatbot_slug: str, name: str, **options):
        chatbot = Chatbot.objects.filter(slug=chatbot_slug).first()
        if chatbot is None:
            known = ", ".join(Chatbot.objects.values_list("slug", flat=True)[:20]) or "none"
            raise CommandError(f"No chatbot with slug {chatbot_slug!r} (known: {known}).")
        key, raw_key = api_key_create(chatbot=chatbot, name=name)
        self.stderr.write(f"API key {name!r} for {chatbot.name} (prefix cm_{key.prefix}). It is shown only now:")
        self.stdout.write(raw_key)
