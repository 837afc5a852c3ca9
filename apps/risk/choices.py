from django.db import models


class AppliesTo(models.TextChoices):
    USER = "user", "User message"
    BOT = "bot", "Bot response"
    BOTH = "both", "Both"

