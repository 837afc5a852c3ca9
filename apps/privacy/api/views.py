from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.chatbots.api.base import BotAPIView
from apps.core.api import ErrorSerializer
from apps.core.text import CONTROL_CHARACTERS_MESSAGE, control_characters_present

from ..hashing import end_user_id_normalise
from ..services import end_user_consent_set, end_user_erase
from .serializers import ConsentRequestSerializer, ConsentResultSerializer, ErasureResultSerializer

MAX_USER_ID_CHARS = 255


def _user_id_refused(user_id: str) -> Response | None:
    """A 400 for an id ingest would not have stored, else None."""
    if not end_user_id_normalise(user_id) or len(end_user_id_normalise(user_id)) > MAX_USER_ID_CHARS:
        return Response({"detail": f"user_id must be 1 to {MAX_USER_ID_CHARS} characters."}, status=400)
    if control_characters_present(user_id):
        # As at ingest (an id there has none, so none is stored under such an id).
        return Response({"detail": f"user_id {CONTROL_CHARACTERS_MESSAGE[0].lower()}{CONTROL_CHARACTERS_MESSAGE[1:]}"},
                        status=400)
    return None


class EndUserErasureView(BotAPIView):
    """Right to erasure, called by the bot with its own API key."""

    @extend_schema(
        operation_id="end_user_erase",
        summary="Erase everything stored about one end user of this chatbot",
        description=(
            "Deletes the end user's turns with their LLM calls, evaluations, feedback, cached embeddings "
            "and cluster memberships for the key's chatbot (a conversation goes whole when no other end "
            "user has a turn in it; otherwise its summary is recomputed), their votes on other users' "
            "turns, and the cluster titles and labeling-model calls drawn from their messages; then "
            "answers with the true counts. Idempotent: erasing an unknown or already erased user answers "
            "200 with zeros. `user_id` is the same id the bot sends at ingest (URL-encode it); surrounding "
            "whitespace is ignored on both paths."
        ),
        parameters=[OpenApiParameter("user_id", str, OpenApiParameter.PATH, description="The bot's end-user id.")],
        responses={200: ErasureResultSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 429: ErrorSerializer},
        examples=[OpenApiExample("Erased", response_only=True, value={
            "end_user": "3f9a1c0d2b7e", "deleted": {"conversations": 3, "turns": 41, "llm_calls": 44, "evaluations": 41,
                                                   "feedback": 2, "embeddings": 1, "cluster_memberships": 1}})],
        tags=["privacy"],
    )
    def delete(self, request, user_id: str):
        # Normalised as at ingest (apps.privacy.hashing): " carol " erases what "carol" sent.
        if (refused := _user_id_refused(user_id)) is not None:
            return refused
        result = end_user_erase(
            chatbot=request.user.chatbot, user_id=user_id, actor_label=str(request.user), via="api"
        )
        return Response({"end_user": result.hash_prefix, "deleted": result.counts})


class EndUserConsentView(BotAPIView):
    """An end user states or withdraws consent, relayed by the bot with its own API key."""

    @extend_schema(
        operation_id="end_user_consent_set",
        summary="Set one end user's consent: applies to what is stored and to their future turns",
        description=(
            "`no_content`: every text stored of the end user's turns for the key's chatbot (messages, answers, "
            "errors, steps, LLM call texts, the judge's reasoning, feedback and score comments, debug_info) is "
            "replaced by the fixed marker `[withheld: no_content consent]` now; the turns leave clustering (the "
            "clusters are recounted and relabelled) and are never judged or embedded; metrics, scores and flags "
            "stay; their conversations store no text from now on. `no_training`: their conversations are left out "
            "of clustering and fine-tuning exports. A conversation never gets less strict; the value stated applies "
            "to the end user's future turns (the strictest of it, what the turn states and the chatbot's default). "
            "`user_id` as at ingest (URL-encode it; surrounding whitespace ignored)."
        ),
        parameters=[OpenApiParameter("user_id", str, OpenApiParameter.PATH, description="The bot's end-user id.")],
        request=ConsentRequestSerializer,
        responses={200: ConsentResultSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 429: ErrorSerializer},
        examples=[
            OpenApiExample("Withdraw", request_only=True, value={"consent": "no_content"}),
            OpenApiExample("Withdrawn", response_only=True, value={
                "end_user": "3f9a1c0d2b7e", "consent": "no_content", "conversations": 2,
                "withheld": {"turns": 14, "llm_calls": 15, "evaluations": 3, "feedback": 1, "steps": 0,
                             "scores": 0, "embeddings": 1, "cluster_memberships": 1}}),
        ],
        tags=["privacy"],
    )
    def post(self, request, user_id: str):
        if (refused := _user_id_refused(user_id)) is not None:
            return refused
        serializer = ConsentRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = end_user_consent_set(chatbot=request.user.chatbot, user_id=user_id,
                                      consent=serializer.validated_data["consent"], actor_label=str(request.user))
        return Response({"end_user": result.end_user_hash[:12], "consent": result.consent,
                         "conversations": result.conversations, "withheld": result.withheld})

    @extend_schema(exclude=True)
    def delete(self, request, user_id: str):
        # An end-user id that itself ends in "/consent" is still erased by DELETE.
        return EndUserErasureView.as_view()(request._request, user_id=f"{user_id}/consent")
