from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google"
    AZURE = "azure", "Azure OpenAI"
    MISTRAL = "mistral", "Mistral"
    SELF_HOSTED = "self_hosted", "Self-hosted"
    OTHER = "other", "Other"
