from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.chatbots.api.base import BotAPIView
from apps.conversations.models import Conversation
from apps.core.api import ErrorSerializer
from apps.ingest.api.serializers import BatchResultSerializer
from apps.ingest.validation import OUTCOME_NAMES, ValidationFailed, _Reader

from ..choices import ScoreType
from ..models import Score
from ..services import ScoreRejected, outcomes_set, scores_record
from ..values import MAX_COMMENT_CHARS, ScoreValueInvalid, outcome_value_check, parse_score
from . import serializers

MULTI_STATUS = 207


def score_json_value(score: Score) -> Any:
    if score.data_type == ScoreType.BOOLEAN:
        return bool(score.value)
    if score.data_type == ScoreType.CATEGORICAL:
        return score.category
    return score.value


def _score_body(outcome: Any) -> dict[str, Any]:
    score = outcome.score
    return {"id": score.pk, "score_id": score.external_id, "conversation": outcome.conversation_external_id,
            "turn_id": outcome.turn_external_id, "name": score.name, "data_type": score.data_type,
            "value": score_json_value(score)}


class ScoreIngestView(BotAPIView):
    metrics_name = "scores"

    @extend_schema(
        operation_id="ingest_scores",
        summary="Score a conversation or a turn; one score or a batch",
        description=(
            "Any signal that is not a thumb: a checker's verdict, a custom metric, an outcome. `score_id` makes "
            "retries safe (200 with the stored score). A name the chatbot has a score definition for is checked "
            "against it; reserved names have fixed rules. A batch (`{\"scores\": [...]}`) answers 207, one result "
            "per item; an unknown conversation or turn is a 400 for that item alone."
        ),
        request=PolymorphicProxySerializer(component_name="ScoreIngestRequest", resource_type_field_name=None,
                                           serializers=[serializers.ScoreInSerializer, serializers.ScoreBatchSerializer]),
        responses={201: serializers.ScoreResultSerializer, 200: serializers.ScoreResultSerializer,
                   207: BatchResultSerializer, 400: ErrorSerializer, 401: ErrorSerializer},
        examples=[OpenApiExample("CSAT of a conversation", request_only=True, value={
            "score_id": "csat-conv-8812", "conversation_id": "conv-8812", "name": "csat", "value": 4,
            "comment": "quick and correct"})],
        tags=["ingest"],
    )
    def post(self, request):
        chatbot = request.user.chatbot
        body = self.read_json(request)
        try:
            if not isinstance(body, dict):
                raise ValidationFailed({"non_field_errors": ["Expected a JSON object: one score, or {\"scores\": [...]}."]})
            if "scores" not in body:
                outcome = scores_record(chatbot=chatbot, items=[parse_score(body)])[0]
                if isinstance(outcome, ScoreRejected):
                    raise ValidationFailed(outcome.errors)
                return Response(_score_body(outcome), status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)
            items = body["scores"]
            if not isinstance(items, list) or not items or len(items) > settings.INGEST_MAX_BATCH:
                raise ValidationFailed({"scores": [f"A list of 1 to {settings.INGEST_MAX_BATCH} scores."]})
        except ValidationFailed as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        results: list[Any] = [None] * len(items)
        valid, positions = [], []
        for index, raw in enumerate(items):
            try:
                valid.append(parse_score(raw))
                positions.append(index)
            except ValidationFailed as exc:
                results[index] = {"index": index, "status": 400, "errors": exc.errors}
        for index, outcome in zip(positions, scores_record(chatbot=chatbot, items=valid) if valid else [], strict=True):
            if isinstance(outcome, ScoreRejected):
                results[index] = {"index": index, "status": 400, "errors": outcome.errors}
            else:
                results[index] = {"index": index, "status": 201 if outcome.created else 200, **_score_body(outcome)}
        return Response({"results": results}, status=MULTI_STATUS)


class OutcomesView(BotAPIView):
    metrics_name = "outcomes"

    @extend_schema(
        operation_id="ingest_outcomes",
        summary="Set a conversation's business outcomes",
        description=(
            "The reserved conversation-level scores: converted, resolved, handed_off (with handoff_reason), csat "
            "(1–5), nps (0–10), lead_quality. They may arrive long after the conversation (a sale the next day); "
            "each outcome has one value per conversation, the latest winning."
        ),
        request=serializers.OutcomesInSerializer,
        responses={200: serializers.OutcomesResultSerializer, 400: ErrorSerializer, 401: ErrorSerializer,
                   404: ErrorSerializer},
        examples=[OpenApiExample("Converted the next day", request_only=True, value={"converted": True, "csat": 5})],
        tags=["ingest"],
    )
    def post(self, request, conversation_id: str):
        chatbot = request.user.chatbot
        body = self.read_json(request)
        if not isinstance(body, dict):
            return Response({"non_field_errors": ["Expected a JSON object of outcomes."]}, status=400)
        r = _Reader(body)
        unknown = sorted(set(body) - set(OUTCOME_NAMES) - {"handoff_reason", "timestamp"})
        if unknown:
            r.fail("non_field_errors", f"Unknown field(s): {', '.join(unknown)[:200]}; outcomes are {', '.join(OUTCOME_NAMES)}.")
        values = {}
        for name in OUTCOME_NAMES:
            if r.present(name):
                try:
                    values[name] = outcome_value_check(name, body[name])
                except ScoreValueInvalid as exc:
                    r.fail(name, str(exc))
        reason = r.text("handoff_reason", max_chars=MAX_COMMENT_CHARS)
        at = r.timestamp("timestamp")
        if not values and not r.errors:
            r.fail("non_field_errors", f"Send at least one of {', '.join(OUTCOME_NAMES)}.")
        if r.errors:
            return Response(r.errors, status=status.HTTP_400_BAD_REQUEST)
        conversation = Conversation.objects.filter(chatbot=chatbot, external_id=conversation_id).first()
        if conversation is None:
            return Response({"detail": "No such conversation for this chatbot."}, status=status.HTTP_404_NOT_FOUND)
        try:
            with transaction.atomic():
                stored = outcomes_set(chatbot=chatbot, conversation=conversation, values=values, reason=reason, at=at)
        except ScoreValueInvalid as exc:  # the chatbot's categories for lead_quality
            return Response({"lead_quality": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"conversation": conversation.external_id,
                         "outcomes": {score.name: score_json_value(score) for score in stored}})
