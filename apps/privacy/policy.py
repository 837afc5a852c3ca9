"""The chatbot's redaction policy: the one place that decides whether a text is redacted.

Every path that stores text a client sent (ingest turns and LLM calls, OTLP spans and log events,
feedback comments) calls these functions instead of testing `chatbot.pii_redaction_enabled`
itself; the matching is apps.privacy.redaction's. Counts per kind come back with the text so
callers can record what was found (never the values).
"""

from typing import Any, Protocol

from django.db.models import QuerySet

from apps.conversations.choices import Consent

from .redaction import counts_merge, redact


class RedactionPolicyHolder(Protocol):
    pii_redaction_enabled: bool


def text_redact_for(chatbot: RedactionPolicyHolder, text: str) -> tuple[str, dict[str, int]]:
    """`text` as the chatbot stores it: redacted when the chatbot redacts PII; counts per kind."""
    if not text or not chatbot.pii_redaction_enabled:
        return text, {}
    return redact(text)


def json_redact_for(chatbot: RedactionPolicyHolder, value: Any) -> tuple[Any, dict[str, int]]:
    """A JSON value (an OTLP log body with its attributes, say) with every string value redacted
    by the chatbot's policy; keys are names, not content, and stay as they are."""
    if not chatbot.pii_redaction_enabled:
        return value, {}
    found: list[dict[str, int]] = []

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            text, counts = redact(item)
            if counts:
                found.append(counts)
            return text
        if isinstance(item, dict):
            return {key: walk(child) for key, child in item.items()}
        if isinstance(item, list):
            return [walk(child) for child in item]
        return item

    return walk(value), counts_merge(*found)


# --- consent (issue 18): what the end user allows chatmon to keep and use ------------------------

# The one text a no_content turn, step, LLM call or feedback comment holds instead of what was
# sent. Fixed, so nothing of the original (not even its length) is kept.
NO_CONTENT_MARKER = "[withheld: no_content consent]"


def text_withheld(text: str) -> str:
    """`text` as a no_content conversation stores it: the marker, or "" when there was none."""
    return NO_CONTENT_MARKER if text else text


def content_allowed_turns(queryset: QuerySet) -> QuerySet:
    """Turns whose text may be sent to a model (judge, embeddings, cluster labels): not no_content."""
    return queryset.exclude(conversation__consent=Consent.NO_CONTENT)


def training_allowed_turns(queryset: QuerySet) -> QuerySet:
    """Turns that may go into training data (fine-tuning exports, datasets): full consent only.

    no_training keeps texts for review and analysis but out of everything exported for training;
    no_content has no text to export. Works on any Turn queryset (filters, ordering kept).
    """
    return queryset.filter(conversation__consent=Consent.FULL)
