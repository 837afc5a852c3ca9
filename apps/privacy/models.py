from django.db import models

from apps.chatbots.choices import Consent


class EndUserConsent(models.Model):
    """An end user's consent as they last stated it (POST /api/v1/end-users/{user_id}/consent):
    it applies to their future turns; what is already stored was made at least this strict when
    it was stated (apps/privacy/services.py)."""

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    end_user_hash = models.CharField(max_length=64, help_text="HMAC-SHA256 of the end user's id.")
    consent = models.CharField(max_length=16, choices=Consent.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "end_user_hash"], name="end_user_consent_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.end_user_hash[:12]}: {self.consent}"
