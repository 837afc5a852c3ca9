import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.core.models import TimestampedModel

from .choices import Consent, Provider

DEFAULT_JUDGE_WEIGHTS = {
    "relevance": 0.30,
    "safety": 0.25,
    "accuracy": 0.20,
    "helpfulness": 0.15,
    "clarity": 0.10,
}


class Chatbot(TimestampedModel):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    company = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=32, choices=Provider.choices, default=Provider.OPENAI)
    model = models.CharField(max_length=100, blank=True, help_text="The bot's main model.")
    description = models.TextField(blank=True)
    monitoring_enabled = models.BooleanField(
        default=True, help_text="Off: turns are stored but not scored for risk."
    )
    risk_threshold = models.PositiveSmallIntegerField(
        default=70,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="A turn whose risk score reaches this is flagged.",
    )
    alert_on_risk = models.BooleanField(
        default=False, help_text="Notify this chatbot's channels when a turn is flagged at high/critical risk."
    )

    judge_enabled = models.BooleanField(default=True)
    judge_sample_rate = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of turns judged (0–1); the choice per turn is deterministic.",
    )
    judge_model = models.CharField(max_length=100, blank=True, help_text="Empty: JUDGE_MODEL setting.")
    judge_weights = models.JSONField(
        default=dict, blank=True, help_text="Criterion weights; empty uses the defaults."
    )
    judge_flag_below = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.0), MaxValueValidator(10.0)]
    )
    judge_instructions = models.TextField(
        blank=True, help_text="Extra rubric text: the bot's domain, policies, tone."
    )
    # The conversation judge (apps.evaluations): a whole conversation graded once it is over.
    conversation_judge_sample_rate = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of finished conversations judged as a whole (0–1, deterministic per conversation); "
                  "0 turns the conversation judge off. Needs the judge enabled.",
    )
    conversation_idle_minutes = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)],
        help_text="A conversation without activity for this long is over and judged as a whole "
                  "(an `end` event judges it at once).",
    )
    conversation_judge_flag_below = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.0), MaxValueValidator(10.0)],
        help_text="A conversation whose conversation-judge overall is below this is flagged.",
    )

    pii_redaction_enabled = models.BooleanField(default=True)
    default_consent = models.CharField(
        max_length=16, choices=Consent.choices, default=Consent.FULL,
        help_text="Consent of new conversations; a stricter one stated by a turn or by the end user wins.",
    )
    retention_days = models.PositiveIntegerField(
        default=90, help_text="Conversations older than this are deleted nightly; 0 keeps them."
    )
    allowed_origins = models.JSONField(
        default=list, blank=True, help_text='Origins allowed to post widget feedback, e.g. ["https://shop.example"].'
    )

    clustering_interval_hours = models.PositiveIntegerField(
        default=24, help_text="Cluster thumbs-down turns this often; 0 turns scheduled runs off."
    )
    clustering_window_days = models.PositiveIntegerField(default=14)
    last_clustered_at = models.DateTimeField(null=True, blank=True)

    session_gap_minutes = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)],
        help_text="Turns sent without a conversation id join the end user's session on their channel "
                  "unless the user was inactive this long.",
    )

    review_labels = models.JSONField(
        default=list, blank=True,
        help_text='Labels reviewers can put on a turn, e.g. ["wrong price", "tone", "missed handoff"].',
    )

    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="reviewed_chatbots",
        help_text="Staff in the Reviewer group see and review only the chatbots they are assigned.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def conversation_judge_enabled(self) -> bool:
        return self.judge_enabled and self.conversation_judge_sample_rate > 0

    def effective_judge_weights(self) -> dict[str, float]:
        weights = {**DEFAULT_JUDGE_WEIGHTS, **{k: float(v) for k, v in (self.judge_weights or {}).items() if k in DEFAULT_JUDGE_WEIGHTS}}
        total = sum(weights.values()) or 1.0
        return {k: v / total for k, v in weights.items()}


class ApiKey(models.Model):
    """A bot's credential. Only the SHA-256 of the key is stored; the prefix finds the row.

    Keys carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    """

    PREFIX_LENGTH = 8

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"cm_{self.prefix}… ({self.name})"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new (prefix, raw key) pair: `cm_<prefix>_<43 url-safe chars = 256 bits>`."""
        prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
        return prefix, f"cm_{prefix}_{secrets.token_urlsafe(32)}"

    @staticmethod
    def parse_prefix(raw_key: str) -> str | None:
        parts = raw_key.split("_", 2)
        if len(parts) != 3 or parts[0] != "cm" or len(parts[1]) != ApiKey.PREFIX_LENGTH:
            return None
        return parts[1]

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
