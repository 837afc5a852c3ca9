from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.chatbots.api.base import BotAPIView
from apps.core.api import ErrorSerializer
from apps.core.text import CONTROL_CHARACTERS_MESSAGE, control_characters_present

from ..hashing import end_user_id_normalise
from ..services import end_user_erase
from .serializers import ErasureResultSerializer

MAX_USER_ID_CHARS = 255


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
        if not end_user_id_normalise(user_id) or len(end_user_id_normalise(user_id)) > MAX_USER_ID_CHARS:
            return Response({"detail": f"user_id must be 1 to {MAX_USER_ID_CHARS} characters."}, status=400)
        if control_characters_present(user_id):
            # As at ingest (an id there has none, so none is stored under such an id).
            return Response({"detail": f"user_id {CONTROL_CHARACTERS_MESSAGE[0].lower()}{CONTROL_CHARACTERS_MESSAGE[1:]}"},
                            status=400)
        result = end_user_erase(
            chatbot=request.user.chatbot, user_id=user_id, actor_label=str(request.user), via="api"
        )
        return Response({"end_user": result.hash_prefix, "deleted": result.counts})
