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


class FailureSource(models.TextChoices):
    """Why a turn is in a clustering run: the failure signals a run may select (default: all).

    Each is defined once in apps.clustering.sources (a database filter and the test on a loaded
    turn); a member records every source it matched.
    """

    THUMBS_DOWN = "thumbs_down", "Thumbs-down"
    JUDGE_FLAGGED = "judge_flagged", "Flagged by the judge"
    HALLUCINATED = "hallucinated", "Hallucinated"
    FALLBACK = "fallback", "Fallback answer"
    ERROR = "error", "Bot error"
    MANUAL_FLAG = "manual_flag", "Flagged by hand"
    LOW_CONVERSATION_SCORE = "low_conversation_score", "Low conversation score"
