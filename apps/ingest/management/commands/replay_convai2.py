from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.ingest.convai2 import convai2_replay


class Command(BaseCommand):
    help = "Load ConvAI2 dialogues (../shared/data/convai2/*.json) with their real thumbs up/down."

    def add_arguments(self, parser):
        parser.add_argument("path", help="A ConvAI2 JSON file, or a folder holding them.")
        parser.add_argument("--limit", type=int, default=None, help="Only the first N dialogues of each file.")

    def handle(self, *args, path: str, limit: int | None, **options):
        target = Path(path)
        if not target.exists():
            raise CommandError(f"{target} does not exist (the shared data sits in ../shared/data/convai2).")
        files = sorted(target.glob("*.json")) if target.is_dir() else [target]
        if not files:
            raise CommandError(f"No .json files in {target}.")
        for file in files:
            try:
                counts = convai2_replay(file, limit=limit)
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"{file} is not a ConvAI2 dialogue file: {exc}") from exc
            self.stdout.write(f"{file.name}: {counts['dialogues']} dialogues, {counts['turns']} turns, "
                              f"{counts['up']} thumbs-up, {counts['down']} thumbs-down")
