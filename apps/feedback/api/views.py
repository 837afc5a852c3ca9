"""`POST /api/v1/feedback`: public votes with a signed token, or bot-side votes with an API key."""

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.chatbots.api.authentication import ApiKeyAuthentication
from apps.chatbots.api.throttling import ApiKeyRateThrottle
from apps.chatbots.models import ApiKey, Chatbot
from apps.conversations.models import Turn
from apps.core.api import StrictJSONParser
from apps.feedback import cors
from apps.feedback.choices import FeedbackSource
from apps.feedback.services import (
    FeedbackResult,
    FeedbackTurnNotFound,
    feedback_submit,
    feedback_voter_key,
)
from apps.feedback.tokens import FeedbackTokenError, feedback_token_parse

from .serializers import (
    FeedbackBotVoteSerializer,
    FeedbackResultSerializer,
    FeedbackTokenVoteSerializer,
)
from .throttles import FeedbackIpThrottle, FeedbackTokenThrottle


def _error(detail: str, code: str, http_status: int) -> Response:
    return Response({"detail": detail, "code": code}, status=http_status)


class FeedbackView(APIView):
    """One endpoint, two callers: the widget (token, no key) and bots (API key, their own ids)."""

    # No Authorization header: the anonymous widget path; a bad or revoked key: 401.
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [AllowAny]
    parser_classes = [StrictJSONParser]
    # Bots share their key's ingest budget; the public path is limited per IP and per token.
    throttle_classes = [ApiKeyRateThrottle, FeedbackIpThrottle, FeedbackTokenThrottle]
    # The chatbot whose allowed_origins answer CORS for this request, once the token is read.
    cors_chatbot: Chatbot | None = None

    def check_throttles(self, request: Request) -> None:
        # Browsers send a preflight before each uncached POST; count only the POST.
        if request.method != "OPTIONS":
            super().check_throttles(request)

    @extend_schema(
        operation_id="feedback_create",
        summary="Rate one bot answer (thumbs up/down, optional comment)",
        description=(
            "Public: send the turn's `feedback_token` (no API key; CORS limited to the chatbot's "
            "allowed origins). Bots that collect ratings in their own UI send `conversation_id` "
            "and `turn_id` with `Authorization: Bearer <api key>` instead. One vote per turn "
            "per end user: a later vote replaces the earlier one; an identical repeat is a no-op."
        ),
        request=PolymorphicProxySerializer(
            component_name="FeedbackVote",
            serializers=[FeedbackTokenVoteSerializer, FeedbackBotVoteSerializer],
            resource_type_field_name=None,
        ),
        responses={
            201: FeedbackResultSerializer,
            200: FeedbackResultSerializer,
            400: OpenApiResponse(description="Invalid body (field errors)."),
            401: OpenApiResponse(description="Bad or revoked API key."),
            403: OpenApiResponse(description="Token invalid/expired, or origin not allowed."),
            404: OpenApiResponse(description="The turn does not exist (any more)."),
            429: OpenApiResponse(description="Rate limited; see Retry-After."),
        },
        tags=["feedback"],
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiKey):
            return self._post_from_bot(request, request.auth)
        return self._post_with_token(request)

    @extend_schema(exclude=True)
    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        origin = request.headers.get("Origin")
        if not origin:
            response = Response(status=status.HTTP_204_NO_CONTENT)
            response["Allow"] = "POST, OPTIONS"
            return response
        if not cors.origin_allowed_for_any_chatbot(request=request, origin=origin):
            return _error("This origin may not send feedback.", "origin_not_allowed", 403)
        response = Response(status=status.HTTP_204_NO_CONTENT)
        cors.cors_preflight_allow(response, origin)
        return response

    def _post_with_token(self, request: Request) -> Response:
        serializer = FeedbackTokenVoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            claims = feedback_token_parse(data["token"])
        except FeedbackTokenError as exc:
            code = "token_expired" if exc.expired else "token_invalid"
            return _error(str(exc), code, status.HTTP_403_FORBIDDEN)
        turn = (
            Turn.objects.filter(pk=claims.turn_id)
            .only("id", "chatbot_id", "conversation_id")
            .first()
        )
        if turn is None:
            return _error(
                "This answer no longer exists.", "turn_not_found", status.HTTP_404_NOT_FOUND
            )
        if turn.chatbot_id != claims.chatbot_id:
            return _error(
                "This feedback token is not valid.", "token_invalid", status.HTTP_403_FORBIDDEN
            )
        self.cors_chatbot = Chatbot.objects.only("id", "allowed_origins").get(pk=turn.chatbot_id)
        origin = request.headers.get("Origin")
        if origin and not cors.origin_allowed_for_chatbot(
            request=request, origin=origin, chatbot=self.cors_chatbot
        ):
            return _error(
                "This origin may not send feedback for this chatbot.", "origin_not_allowed", 403
            )
        return self._submit(
            turn_id=turn.pk,
            voter_key=feedback_voter_key(turn=turn),
            data=data,
            source=FeedbackSource.WIDGET,
        )

    def _post_from_bot(self, request: Request, api_key: ApiKey) -> Response:
        serializer = FeedbackBotVoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # A key only ever reaches its own chatbot's turns.
        turn = (
            Turn.objects.filter(
                conversation__chatbot_id=api_key.chatbot_id,
                conversation__external_id=data["conversation_id"],
                external_id=data["turn_id"],
            )
            .only("id", "chatbot_id", "conversation_id")
            .first()
        )
        if turn is None:
            return _error(
                "No turn with this turn_id in this conversation_id for this chatbot.",
                "turn_not_found",
                status.HTTP_404_NOT_FOUND,
            )
        return self._submit(
            turn_id=turn.pk,
            voter_key=feedback_voter_key(turn=turn, user_id=data.get("user_id") or ""),
            data=data,
            source=FeedbackSource.API,
        )

    def _submit(
        self, *, turn_id: int, voter_key: str, data: dict[str, Any], source: str
    ) -> Response:
        try:
            result: FeedbackResult = feedback_submit(
                turn_id=turn_id,
                voter_key=voter_key,
                rating=data["rating"],
                comment=data.get("comment"),
                source=source,
            )
        except FeedbackTurnNotFound:
            return _error(
                "This answer no longer exists.", "turn_not_found", status.HTTP_404_NOT_FOUND
            )
        body = FeedbackResultSerializer(result.feedback, context={"status": result.status}).data
        return Response(
            body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )

    def finalize_response(
        self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        response = super().finalize_response(request, response, *args, **kwargs)
        cors.vary_on_origin(response)
        origin = request.headers.get("Origin")
        if (
            not origin
            or request.method == "OPTIONS"
            or "Access-Control-Allow-Origin" in response
            # A bot key is a server-side secret: its answers are never offered to browsers.
            or isinstance(getattr(request, "auth", None), ApiKey)
        ):
            return response
        if self.cors_chatbot is not None:
            allowed = cors.origin_allowed_for_chatbot(
                request=request, origin=origin, chatbot=self.cors_chatbot
            )
        else:
            allowed = cors.origin_allowed_for_any_chatbot(request=request, origin=origin)
        if allowed:
            cors.cors_allow(response, origin)
        return response


@extend_schema_view(post=extend_schema(exclude=True))
class FeedbackSlashView(FeedbackView):
    """`/api/v1/feedback/`: the same endpoint (a POST cannot be redirected to the other
    spelling), documented once, without the slash, as in the product spec."""
