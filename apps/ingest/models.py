from django.db import models
from django.utils import timezone


class ModelPrice(models.Model):
    """Public list price per 1M tokens for a model name or glob pattern (e.g. `gpt-4o-mini*`).

    The most specific (longest) matching pattern wins; among those, the latest `valid_from` on or
    before the call's date.
    """

    provider = models.CharField(max_length=50, blank=True)
    model_pattern = models.CharField(max_length=100, help_text="Exact name or glob, e.g. claude-3-5-haiku*")
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    valid_from = models.DateField(default=timezone.now)
    notes = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["provider", "model_pattern", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["model_pattern", "valid_from"], name="model_price_pattern_valid_from"),
        ]

    def __str__(self) -> str:
        return f"{self.model_pattern} ${self.input_per_million}/{self.output_per_million} per 1M"
