from django.db import models

# Consent is defined with the chatbot (its default) and is the conversation's too: one set of
# values, importable from here as the conversation's choices.
from apps.chatbots.choices import CONSENT_STRICTNESS, Consent, consent_strictest  # noqa: F401


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
        return next(cls(level) for level, (low, _) in reversed(RISK_SCORE_RANGES.items()) if score >= low)


# Risk score → level, lowest first: the one definition the level, the filters and the badges use.
RISK_SCORE_RANGES: dict[str, tuple[int, int]] = {
    RiskLevel.LOW: (0, 24),
    RiskLevel.MEDIUM: (25, 49),
    RiskLevel.HIGH: (50, 74),
    RiskLevel.CRITICAL: (75, 100),
}


class FlagReason(models.TextChoices):
    RISK = "risk", "Risk score"
    JUDGE = "judge", "LLM judge"
    THUMBS_DOWN = "thumbs_down", "Thumbs down"
    MANUAL = "manual", "Manual"
    HALLUCINATION = "hallucination", "Bot-reported hallucination"
    CONVERSATION_JUDGE = "conversation_judge", "Conversation judge"


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
    EXPERIMENT = "experiment", "Experiment"


class Channel(models.TextChoices):
    WEBSITE = "website", "Website"
    WHATSAPP = "whatsapp", "WhatsApp"
    SLACK = "slack", "Slack"
    TELEGRAM = "telegram", "Telegram"
    SMS = "sms", "SMS"
    VOICE = "voice", "Voice"
    API = "api", "API"
    OTHER = "other", "Other"


class StepKind(models.TextChoices):
    SQL = "sql", "SQL query"
    TOOL = "tool", "Tool call"
    RETRIEVAL = "retrieval", "Retrieval"
    HTTP = "http", "HTTP request"
    OTHER = "other", "Other"

