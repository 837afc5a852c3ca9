"""FilterSets of the datasets API (unknown query parameters are a 400, apps.core.api)."""

from __future__ import annotations

import django_filters as filters

from .choices import ResultStatus, RunStatus
from .models import Dataset, DatasetItem, ExperimentItemResult, ExperimentRun


class DatasetFilterSet(filters.FilterSet):
    slug = filters.CharFilter()

    class Meta:
        model = Dataset
        fields = ["chatbot", "slug"]


class DatasetItemFilterSet(filters.FilterSet):
    tag = filters.CharFilter(method="tag_filter")

    class Meta:
        model = DatasetItem
        fields = ["dataset"]

    def tag_filter(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])


class ExperimentRunFilterSet(filters.FilterSet):
    status = filters.ChoiceFilter(choices=RunStatus.choices)

    class Meta:
        model = ExperimentRun
        fields = ["dataset", "target", "status", "is_baseline"]


class ExperimentItemResultFilterSet(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ResultStatus.choices)

    class Meta:
        model = ExperimentItemResult
        fields = ["status", "item"]
