"""Conversations as exported JSON, for the API and the review page's export buttons.

The review service loads and audit-logs the export (apps/review/services.py); this module
only serializes it.
"""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from .. import services
from .serializers import ConversationExportSerializer


def conversations_export_json(*, conversation_ids: Iterable[int], actor: AbstractBaseUser) -> list[dict[str, Any]]:
    """`services.conversations_export` as JSON-ready dicts."""
    conversations = services.conversations_export(conversation_ids=conversation_ids, actor=actor)
    return ConversationExportSerializer(conversations, many=True).data


def conversation_export_json(*, conversation_id: int, actor: AbstractBaseUser) -> dict[str, Any]:
    """`services.conversation_export` as a JSON-ready dict; DoesNotExist if `actor` may not see it."""
    conversation = services.conversation_export(conversation_id=conversation_id, actor=actor)
    return ConversationExportSerializer(conversation).data
