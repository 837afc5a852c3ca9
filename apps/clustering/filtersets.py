import django_filters

from .choices import RunStatus
from .models import Cluster, ClusterMember, ClusterRun


class ClusterRunFilterSet(django_filters.FilterSet):
    chatbot = django_filters.NumberFilter(field_name="chatbot_id", help_text="Chatbot id.")
    chatbot_slug = django_filters.CharFilter(field_name="chatbot__slug", help_text="Chatbot slug.")
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)

    class Meta:
        model = ClusterRun
        fields = ["chatbot", "chatbot_slug", "status"]


class ClusterFilterSet(django_filters.FilterSet):
    chatbot = django_filters.NumberFilter(field_name="run__chatbot_id", help_text="Chatbot id.")
    chatbot_slug = django_filters.CharFilter(field_name="run__chatbot__slug", help_text="Chatbot slug.")
    run = django_filters.NumberFilter(field_name="run_id", help_text="Cluster run id.")
    is_noise = django_filters.BooleanFilter(help_text="The 'other' bucket of each run.")
    min_size = django_filters.NumberFilter(field_name="size", lookup_expr="gte")

    class Meta:
        model = Cluster
        fields = ["chatbot", "chatbot_slug", "run", "is_noise", "min_size"]


class ClusterMemberFilterSet(django_filters.FilterSet):
    is_representative = django_filters.BooleanFilter()

    class Meta:
        model = ClusterMember
        fields = ["is_representative"]
