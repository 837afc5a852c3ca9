from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Create the superuser if missing (idempotent; used by `make demo`). An existing user keeps "
            "its password unless --password is given.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None, help="Set this password, also on an existing user.")
        parser.add_argument("--initial-password", default=None,
                            help="The password for a user created now; an existing user keeps its own.")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args, username: str, password: str | None, initial_password: str | None, email: str, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        new_password = password if password is not None else (initial_password if created else None)
        if created and new_password is None:
            raise CommandError("A new superuser needs --password or --initial-password.")
        user.is_staff = user.is_superuser = user.is_active = True
        if new_password is not None:
            user.set_password(new_password)
        user.save()
        if created:
            self.stdout.write(f"Created superuser {username!r}.")
        elif password is not None:
            self.stdout.write(f"Superuser {username!r}: password set.")
        else:
            self.stdout.write(f"Superuser {username!r} exists; its password is unchanged.")
