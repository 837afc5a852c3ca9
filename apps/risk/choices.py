from django.db import models


class AppliesTo(models.TextChoices):
    USER = "user", "User message"
    BOT = "bot", "Bot response"
    BOTH = "both", "Both"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"
