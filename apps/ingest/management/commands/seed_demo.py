from django.core.management.base import BaseCommand

from apps.conversations.models import Conversation
from apps.ingest.demo import demo_seed


class Command(BaseCommand):
    help = "Load believable demo traffic (3 chatbots, ~14 days) through the real ingest path."

    def add_arguments(self, parser):
        parser.add_argument("--conversations", type=int, default=150, help="Conversations per chatbot.")
        parser.add_argument("--days", type=int, default=14)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when conversations exist.")

    def handle(self, *args, conversations: int, days: int, seed: int, if_empty: bool, **options):
        if if_empty and Conversation.objects.exists():
            self.stdout.write("Demo data already present; skipping (run without --if-empty to add more).")
            return
        counts = demo_seed(conversations=conversations, days=days, seed=seed)
        for slug, turns in counts.items():
            self.stdout.write(f"{slug}: {turns} turns")
