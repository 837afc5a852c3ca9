from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.conversations.choices import RiskLevel
from apps.core.models import TimestampedModel
from apps.core.regex import regex_problem

from .choices import AppliesTo


class DetectionRule(TimestampedModel):
    """A real-time risk rule: keywords (whole words, any case) and/or a regex, worth `points`."""

    chatbot = models.ForeignKey(
        "chatbots.Chatbot", null=True, blank=True, on_delete=models.CASCADE, related_name="detection_rules",
        help_text="Empty: applies to every chatbot.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    keywords = models.JSONField(default=list, blank=True, help_text='Whole words or phrases, e.g. ["kill myself"].')
    regex = models.TextField(
        blank=True,
        help_text="RE2 regular expression, matched case-insensitively: no backreferences or lookaround; "
        "\\w, \\d, \\s and \\b are ASCII only (use \\pL for any letter).",
    )
    model_patterns = models.JSONField(
        default=list, blank=True, help_text='Only turns from these models (glob patterns); empty: all.'
    )
    applies_to = models.CharField(max_length=8, choices=AppliesTo.choices, default=AppliesTo.BOTH)
    points = models.PositiveSmallIntegerField(default=25, validators=[MinValueValidator(0), MaxValueValidator(100)])
    # A match's severity in the risk levels' words (the level a turn gets is from its score).
    severity = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.keywords and not self.regex:
            raise ValidationError("A rule needs keywords, a regex, or both.")
        if not isinstance(self.keywords, list) or not all(isinstance(k, str) and k.strip() for k in self.keywords):
            raise ValidationError({"keywords": "Keywords must be a list of non-empty strings."})
        if not isinstance(self.model_patterns, list) or not all(isinstance(m, str) for m in self.model_patterns):
            raise ValidationError({"model_patterns": "Model patterns must be a list of strings."})
        if self.regex:
            # Compiled by RE2, the engine scoring runs it with (linear time on any message).
            problem = regex_problem(self.regex, ignore_case=True)
            if problem:
                raise ValidationError({"regex": f"Invalid regular expression: {problem}"})
