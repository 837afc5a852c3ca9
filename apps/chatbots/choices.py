from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google"
    AZURE = "azure", "Azure OpenAI"
    MISTRAL = "mistral", "Mistral"
    SELF_HOSTED = "self_hosted", "Self-hosted"
    OTHER = "other", "Other"


class Consent(models.TextChoices):
    """What the end user allows chatmon to keep of a conversation (issue 18, "Consent")."""

    FULL = "full", "Full"
    NO_CONTENT = "no_content", "No content (metrics only)"
    NO_TRAINING = "no_training", "Not for training or exports"


# Stricter is higher: no_content stores no text, so it allows no training either.
CONSENT_STRICTNESS = {Consent.FULL: 0, Consent.NO_TRAINING: 1, Consent.NO_CONTENT: 2}


def consent_strictest(*values: str) -> str:
    """The strictest of these consent values ("" and None ignored); "full" when none is given."""
    given = [v for v in values if v]
    return max(given, key=lambda v: CONSENT_STRICTNESS[Consent(v)], default=Consent.FULL.value)
