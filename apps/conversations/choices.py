from django.db import models


class ReviewStatus(models.TextChoices):
    NEW = "new", "New"
    IN_REVIEW = "in_review", "In review"
    RESOLVED = "resolved", "Resolved"
    FALSE_POSITIVE = "false_positive", "False positive"


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"

    @classmethod
    def for_score(cls, score: int) -> "RiskLevel":
        if score >= 75:
            return cls.CRITICAL
        if score >= 50:
            return cls.HIGH
        if score >= 25:
            return cls.MEDIUM
        return cls.LOW


class FlagReason(models.TextChoices):
    RISK = "risk", "Risk score"
    JUDGE = "judge", "LLM judge"
    THUMBS_DOWN = "thumbs_down", "Thumbs down"
    MANUAL = "manual", "Manual"


class JudgeStatus(models.TextChoices):
    NOT_SAMPLED = "", "Not sampled"
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class CallPurpose(models.TextChoices):
    BOT = "bot", "Bot"
    JUDGE = "judge", "Judge"
    EMBEDDING = "embedding", "Embedding"
    LABELING = "labeling", "Cluster labeling"


class Channel(models.TextChoices):
    WEBSITE = "website", "Website"
    WHATSAPP = "whatsapp", "WhatsApp"
    SLACK = "slack", "Slack"
    TELEGRAM = "telegram", "Telegram"
    SMS = "sms", "SMS"
    VOICE = "voice", "Voice"
    API = "api", "API"
    OTHER = "other", "Other"
