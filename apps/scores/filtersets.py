import django_filters as filters
from django.db.models import QuerySet

from apps.chatbots.access import chatbots_for_user
from apps.chatbots.models import Chatbot

from .choices import ScoreType
from .models import Score


def scoped_chatbots(request) -> QuerySet[Chatbot]:
    return chatbots_for_user(request.user) if request is not None else Chatbot.objects.none()


class ScoreFilterSet(filters.FilterSet):
    chatbot = filters.ModelChoiceFilter(queryset=scoped_chatbots, help_text="Chatbot id.")
    conversation = filters.NumberFilter(field_name="conversation_id")
    turn = filters.NumberFilter(field_name="turn_id")
    name = filters.CharFilter()
    source = filters.CharFilter()
    data_type = filters.ChoiceFilter(choices=ScoreType.choices)
    category = filters.CharFilter()
    value_min = filters.NumberFilter(field_name="value", lookup_expr="gte", help_text="e.g. name=csat&value_max=2")
    value_max = filters.NumberFilter(field_name="value", lookup_expr="lte")
    after = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    before = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = Score
        fields: list[str] = []
