from __future__ import annotations

from rest_framework import serializers

from ..models import Dataset, DatasetItem, ExperimentItemResult, ExperimentRun, ExperimentTarget
from ..selectors import run_progress


class DatasetSerializer(serializers.ModelSerializer):
    items = serializers.IntegerField(source="item_count", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "chatbot", "name", "slug", "description", "items", "created_at"]


class DatasetItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetItem
        fields = [
            "id",
            "dataset",
            "version",
            "external_id",
            "input",
            "context",
            "expected_answer",
            "expected_properties",
            "tags",
            "metadata",
            "source_turn",
            "created_at",
            "updated_at",
        ]


class ExperimentTargetSerializer(serializers.ModelSerializer):
    # secret_headers are write-only everywhere: never in an answer.
    class Meta:
        model = ExperimentTarget
        fields = [
            "id",
            "name",
            "chatbot",
            "kind",
            "base_url",
            "model",
            "system_prompt",
            "temperature",
            "url",
            "method",
            "body_template",
            "answer_path",
        ]


class ExperimentRunSerializer(serializers.ModelSerializer):
    dataset_slug = serializers.CharField(source="dataset.slug", read_only=True)
    target_name = serializers.CharField(source="target.name", read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ExperimentRun
        fields = [
            "id",
            "dataset",
            "dataset_slug",
            "target",
            "target_name",
            "status",
            "grader",
            "grader_version",
            "is_baseline",
            "total",
            "done",
            "failed",
            "average_score",
            "progress",
            "note",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, run: ExperimentRun) -> dict:
        return run_progress(run)


class ExperimentItemResultSerializer(serializers.ModelSerializer):
    item_version = serializers.IntegerField(source="item_version.number", read_only=True)

    class Meta:
        model = ExperimentItemResult
        fields = [
            "id",
            "item",
            "item_version",
            "status",
            "attempts",
            "output",
            "scores",
            "properties",
            "score",
            "reasoning",
            "reference_reasoning",
            "error",
            "duration_ms",
            "finished_at",
        ]


class ExperimentRunCreateSerializer(serializers.Serializer):
    dataset = serializers.CharField(help_text="Dataset id or slug.")
    target = serializers.CharField(help_text="Target name (e.g. prompt:v2).")
    answers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=20_000),
        required=False,
        help_text="Uploaded-answers targets: output per item id.",
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=300)


class GateSerializer(ExperimentRunCreateSerializer):
    baseline = serializers.CharField(default="latest", help_text="'latest' or a run id.")
    max_drop = serializers.FloatField(default=0.3, min_value=0, max_value=10)
    max_regressions = serializers.IntegerField(default=0, min_value=0)
    # Held inside one web request: under gunicorn's 30 s timeout. Poll …/{id}/verdict/ after a 202.
    wait_seconds = serializers.IntegerField(default=20, min_value=0, max_value=25)
