"""Staff API: cluster runs, clusters and their turns; reviewers see only their chatbots."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # 404, not 500, for a non-numeric id
from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.chatbots.access import chatbot_scoped

from ..filtersets import ClusterFilterSet, ClusterMemberFilterSet, ClusterRunFilterSet
from ..models import ClusterMember
from ..selectors import cluster_members, clusters_for_user, representatives_prefetch, runs_for_user
from .serializers import ClusterRunSerializer, ClusterSerializer, ClusterTurnSerializer


class RunPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class ClusterPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class ClusterRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ClusterRunSerializer
    permission_classes = [IsAdminUser]
    filterset_class = ClusterRunFilterSet
    pagination_class = RunPagination

    def get_queryset(self) -> QuerySet:
        return runs_for_user(self.request.user)


class ClusterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ClusterSerializer
    permission_classes = [IsAdminUser]
    filterset_class = ClusterFilterSet
    pagination_class = ClusterPagination

    def get_queryset(self) -> QuerySet:
        if self.action == "turns":  # the member list is what the turns filterset filters
            return chatbot_scoped(ClusterMember.objects.all(), self.request.user, field="cluster__run__chatbot")
        # Newest run first, then its largest clusters, "other" last.
        return (
            clusters_for_user(self.request.user)
            .prefetch_related(representatives_prefetch())
            .order_by("-run_id", "is_noise", "-size", "index")
        )

    @extend_schema(
        responses=ClusterTurnSerializer(many=True),
        filters=True,
        description="The cluster's turns, closest to the centre first.",
    )
    @action(detail=True, methods=["get"], filterset_class=ClusterMemberFilterSet,
            serializer_class=ClusterTurnSerializer)
    def turns(self, request: Request, pk: str | None = None) -> Response:
        cluster = get_object_or_404(clusters_for_user(request.user), pk=pk)
        queryset = self.filter_queryset(cluster_members(cluster=cluster))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ClusterTurnSerializer(page, many=True).data)
