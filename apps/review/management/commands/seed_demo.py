from django.core.management.base import BaseCommand

from apps.alerts.models import AlertEvent
from apps.chatbots.services import api_key_curl_example
from apps.conversations.models import Conversation
from apps.ingest.demo import demo_api_key_issue, demo_seed
from apps.review.demo import demo_analysis_seed


class Command(BaseCommand):
    help = ("Load believable demo traffic (3 chatbots, ~14 days) through the real ingest path, then "
            "cluster it, raise a firing and a resolved alert to a log channel, and review some of it.")

    def add_arguments(self, parser):
        parser.add_argument("--conversations", type=int, default=150, help="Conversations per chatbot.")
        parser.add_argument("--days", type=int, default=14)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when conversations exist.")
        parser.add_argument("--api-key", metavar="BASE_URL", default="",
                            help="Also issue a fresh demo API key (also when the data exists) and print it "
                                 "with a ready curl line against BASE_URL, e.g. http://127.0.0.1:8000.")

    def handle(self, *args, conversations: int, days: int, seed: int, if_empty: bool, api_key: str, **options):
        if if_empty and Conversation.objects.exists():
            self.stdout.write("Demo data already present; skipping (run without --if-empty to add more).")
        else:
            counts = demo_seed(conversations=conversations, days=days, seed=seed)
            for slug, turns in counts.items():
                self.stdout.write(f"{slug}: {turns} turns")
            seeded = demo_analysis_seed(seed=seed)
            for run in seeded["cluster_runs"]:
                self.stdout.write(f"clusters for {run.chatbot.slug}: {run.get_status_display()}, "
                                  f"{run.cluster_count} clusters of {run.turn_count} failure turns")
            events = AlertEvent.objects.filter(rule__in=[r for r in (seeded["firing_rule"], seeded["resolved_rule"],
                                                                     *seeded["theme_rules"]) if r])
            self.stdout.write("alerts: " + (", ".join(f"{event.title} ({event.get_status_display().lower()})"
                                                      for event in events) or "none raised")
                              + f"; notifications go to {seeded['channel']}")
            reviews = seeded["reviews"]
            self.stdout.write(f"reviews: {reviews['resolved']} resolved, {reviews['false_positive']} false positive, "
                              f"{reviews['in_review']} in review, {reviews['scored']} scored, "
                              f"{reviews['corrected']} corrected, {reviews['manual']} flagged by hand")
        if api_key:
            key, raw_key = demo_api_key_issue()
            self.stdout.write("")
            self.stdout.write(f"  API key for {key.chatbot.name} (shown once; only its hash is stored):")
            self.stdout.write(f"    {raw_key}")
            self.stdout.write("  Send a turn with it:")
            for line in api_key_curl_example(base_url=api_key, raw_key=raw_key).splitlines():
                self.stdout.write(f"    {line}")
