"""The datasets and experiments staff API (session or token, staff only, scoped by chatbot).

A dataset of a chatbot is visible to the staff who see that chatbot; a shared dataset (no
chatbot) only to those who see every chatbot. Out of scope looks the same as missing: 404.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.chatbots.access import chatbot_scoped, user_sees_all_chatbots
from apps.core.api import unknown_query_params_reject
from apps.core.replica import replica_reads

from .. import experiments, filtersets, selectors, services
from ..models import Dataset, DatasetItem, ExperimentRun, ExperimentTarget
from . import serializers


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def datasets_for(user) -> QuerySet[Dataset]:
    return chatbot_scoped(Dataset.objects.all(), user)


def targets_for(user) -> QuerySet[ExperimentTarget]:
    return chatbot_scoped(ExperimentTarget.objects.all(), user)


def _by_id_or_slug(queryset: QuerySet, value: str, *, field: str, what: str):
    value = str(value).strip()
    found = (
        queryset.filter(pk=int(value)).first()
        if value.isdigit()
        else queryset.filter(**{field: value}).first()
    )
    if found is None:
        raise ValidationError({what: [f"No {what} {value!r} among those you may use."]})
    return found


class DatasetViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.DatasetSerializer
    filterset_class = filtersets.DatasetFilterSet
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[Dataset]:
        return datasets_for(self.request.user).annotate(item_count=Count("items"))

    def perform_create(self, serializer) -> None:
        chatbot = serializer.validated_data.get("chatbot")
        user = self.request.user
        if chatbot is None and not user_sees_all_chatbots(user):
            raise ValidationError(
                {"chatbot": ["Only staff who see every chatbot may create a shared dataset."]}
            )
        if (
            chatbot is not None
            and not chatbot_scoped(
                type(chatbot).objects.filter(pk=chatbot.pk), user, field="pk"
            ).exists()
        ):
            raise ValidationError({"chatbot": ["Not a chatbot you may use."]})
        serializer.save(created_by=user)

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={201: {"type": "object"}},
    )
    @action(
        detail=True, methods=["post"], url_path="items", filterset_class=None, pagination_class=None
    )
    def items(self, request: Request, pk: str | None = None) -> Response:
        """Add items: a JSON array of {"input", "context", "expected_answer", "expected_properties",
        "tags", "metadata", "id"} (or {"items": [...]}). All or nothing: a bad item is a 400 naming it."""
        dataset = self.get_object()
        body = request.data
        if isinstance(body, dict) and set(body) == {"items"}:
            body = body["items"]
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not body:
            raise ValidationError({"items": ["Send a non-empty JSON array of items."]})
        if len(body) > services.MAX_IMPORT_ITEMS:
            raise ValidationError(
                {"items": [f"At most {services.MAX_IMPORT_ITEMS} items per request."]}
            )
        cleaned = []
        for index, raw in enumerate(body):
            try:
                cleaned.append(services.item_content_clean(raw))
            except services.ItemInvalid as exc:
                raise ValidationError({"items": [f"item {index}: {exc}"]}) from None
        created = services.dataset_items_create(dataset=dataset, items=cleaned, actor=request.user)
        return Response(
            {"created": len(created), "ids": [i.pk for i in created]},
            status=status.HTTP_201_CREATED,
        )

    @action(
        detail=True, methods=["get"], url_path="export", filterset_class=None, pagination_class=None
    )
    @replica_reads
    def export(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """The items as JSONL (one object a line, the upload's format plus item id and version)."""
        unknown_query_params_reject(request, ())
        dataset = self.get_object()
        response = StreamingHttpResponse(
            services.dataset_export_jsonl(dataset=dataset), content_type="application/jsonl"
        )
        response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.jsonl"'
        return response


class DatasetItemViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Items; PATCH writes a new version (earlier runs keep the version they ran)."""

    serializer_class = serializers.DatasetItemSerializer
    filterset_class = filtersets.DatasetItemFilterSet
    pagination_class = NewestFirst
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[DatasetItem]:
        return DatasetItem.objects.filter(dataset__in=datasets_for(self.request.user))

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        item = self.get_object()
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": ["Send a JSON object."]})
        merged = {**item.content(), "id": item.external_id, **request.data}
        try:
            content = services.item_content_clean(merged)
        except services.ItemInvalid as exc:
            raise ValidationError({"detail": [str(exc)]}) from None
        content.pop("external_id")
        item = services.dataset_item_update(item=item, changes=content, actor=request.user)
        return Response(self.get_serializer(item).data)


class ExperimentTargetViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ExperimentTargetSerializer
    pagination_class = NewestFirst
    filterset_class = None

    def get_queryset(self) -> QuerySet[ExperimentTarget]:
        return targets_for(self.request.user)

    def list(self, request: Request, *args, **kwargs) -> Response:
        unknown_query_params_reject(request, (), view=self)
        return super().list(request, *args, **kwargs)


class ExperimentRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ExperimentRunSerializer
    filterset_class = filtersets.ExperimentRunFilterSet
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[ExperimentRun]:
        return ExperimentRun.objects.filter(
            dataset__in=datasets_for(self.request.user)
        ).select_related("dataset", "target")

    def _create(self, data: dict) -> ExperimentRun:
        user = self.request.user
        dataset = _by_id_or_slug(datasets_for(user), data["dataset"], field="slug", what="dataset")
        target = _by_id_or_slug(targets_for(user), data["target"], field="name", what="target")
        try:
            return experiments.experiment_run_create(
                dataset=dataset,
                target=target,
                actor=user,
                answers=data.get("answers"),
                note=data.get("note", ""),
            )
        except experiments.ExperimentError as exc:
            raise ValidationError({"detail": [str(exc)]}) from None

    @extend_schema(
        request=serializers.ExperimentRunCreateSerializer,
        responses={201: serializers.ExperimentRunSerializer},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        form = serializers.ExperimentRunCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        run = self._create(form.validated_data)
        run.refresh_from_db()
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: serializers.ExperimentItemResultSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None)
    def results(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        queryset = self.filter_queryset_for(request, run.results.select_related("item_version"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(
            serializers.ExperimentItemResultSerializer(page, many=True).data
        )

    def filter_queryset_for(self, request: Request, queryset: QuerySet) -> QuerySet:
        filterset = filtersets.ExperimentItemResultFilterSet(
            request.query_params, queryset=queryset
        )
        unknown_query_params_reject(request, filterset.filters, view=self)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs

    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def compare(self, request: Request, pk: str | None = None) -> Response:
        """This run against `?base=<run id>` (default: the dataset's baseline or newest other finished run)."""
        unknown_query_params_reject(request, ("base",))
        run = self.get_object()
        spec = request.query_params.get("base", "latest").strip()
        try:
            base = selectors.baseline_for(dataset=run.dataset, spec=spec, exclude=run.pk)
        except ValueError as exc:
            raise ValidationError({"base": [str(exc)]}) from None
        if base is None or not self.get_queryset().filter(pk=base.pk).exists():
            raise Http404("No such run to compare with.")
        return Response(selectors.runs_compare(base=base, candidate=run).as_json())

    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def baseline(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        experiments.experiment_baseline_set(run=run)
        return Response(self.get_serializer(run).data)

    @action(
        detail=True,
        methods=["post"],
        url_path="rerun-failed",
        filterset_class=None,
        pagination_class=None,
    )
    def rerun_failed(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        count = experiments.experiment_failed_rerun(run=run)
        return Response({"queued": count})

    @extend_schema(
        request=serializers.GateSerializer,
        responses={200: {"type": "object"}, 202: {"type": "object"}},
    )
    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def gate(self, request: Request) -> Response:
        """The CI gate: create a run, wait up to `wait_seconds`, compare with the baseline.
        200 with `passed` when finished; 202 with the run (poll GET …/{id}/verdict) otherwise."""
        form = serializers.GateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        run = self._create(data)
        params = {
            "baseline": data["baseline"],
            "max_drop": data["max_drop"],
            "max_regressions": data["max_regressions"],
        }
        if not experiments.experiment_run_wait(
            run=run, timeout_seconds=data["wait_seconds"], poll_seconds=1.0
        ):
            return Response(
                {"run": self.get_serializer(run).data, "finished": False, **params},
                status=status.HTTP_202_ACCEPTED,
            )
        return Response(self._verdict(run, **params))

    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def verdict(self, request: Request, pk: str | None = None) -> Response:
        """The gate's verdict for a run: `?baseline=latest|<id>&max_drop=0.3&max_regressions=0`."""
        unknown_query_params_reject(request, ("baseline", "max_drop", "max_regressions"))
        form = serializers.GateSerializer(
            data={"dataset": "-", "target": "-", **request.query_params.dict()}
        )
        form.is_valid(raise_exception=True)
        run = self.get_object()
        if run.status not in ("done", "failed"):
            return Response(
                {"run": self.get_serializer(run).data, "finished": False},
                status=status.HTTP_202_ACCEPTED,
            )
        data = form.validated_data
        return Response(
            self._verdict(
                run,
                baseline=data["baseline"],
                max_drop=data["max_drop"],
                max_regressions=data["max_regressions"],
            )
        )

    def _verdict(
        self, run: ExperimentRun, *, baseline: str, max_drop: float, max_regressions: int
    ) -> dict:
        try:
            result = experiments.experiment_gate(
                run=run, baseline_spec=baseline, max_drop=max_drop, max_regressions=max_regressions
            )
        except (experiments.ExperimentError, ValueError) as exc:
            raise ValidationError({"baseline": [str(exc)]}) from None
        return {
            "run": self.get_serializer(run).data,
            "finished": True,
            "passed": result.passed,
            "reasons": result.reasons,
            "baseline": result.baseline.pk if result.baseline else None,
            "comparison": result.comparison.as_json(with_items=False)
            if result.comparison
            else None,
        }
