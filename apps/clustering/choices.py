from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped (too few turns)"
    FAILED = "failed", "Failed"


class TextMode(models.TextChoices):
    USER = "user", "User message"
    USER_BOT = "user_bot", "User message and bot answer"
