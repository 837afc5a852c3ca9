"""Rewrite every stored secret (experiment targets' headers) under the current SECRET_KEY.

After a SECRET_KEY rotation (the old key in SECRET_KEY_FALLBACKS): run this, then drop the old
key from SECRET_KEY_FALLBACKS. Secrets no configured key opens are listed and left as they are.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.encryption import UnreadableSecret
from apps.datasets.models import ExperimentTarget


class Command(BaseCommand):
    help = "Re-encrypt stored secrets (experiment targets' headers) under the current SECRET_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        rewritten, unreadable = 0, []
        for target in ExperimentTarget.objects.only("pk", "name", "secret_headers").order_by("pk"):
            if isinstance(target.secret_headers, UnreadableSecret):
                unreadable.append(target.name)
                continue
            # Saving encrypts with the current key (a fresh Fernet token).
            target.save(update_fields=["secret_headers"])
            rewritten += 1
        self.stdout.write(f"re-encrypted the secret headers of {rewritten} experiment target(s)")
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} target(s) could not be decrypted with SECRET_KEY or "
                f"SECRET_KEY_FALLBACKS, enter their headers again: {', '.join(unreadable)}"
            )
