"""Who may see which chatbot's data: one rule for the admin and the staff API.

Superusers and members of the "Chatbot admin" group see every chatbot; members of the
"Reviewer" group (and any other staff) see only the chatbots they are assigned to
(`Chatbot.reviewers`). `chatbot_scoped` is the one way to limit a queryset to them.
"""

from collections.abc import Collection

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from apps.chatbots.models import Chatbot

REVIEWER_GROUP = "Reviewer"
CHATBOT_ADMIN_GROUP = "Chatbot admin"


def user_sees_all_chatbots(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=CHATBOT_ADMIN_GROUP).exists()


def chatbots_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Chatbot]:
    """The chatbots `user` may see (to list them; to filter rows by them, use `chatbot_scoped`)."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Chatbot.objects.none()
    if user_sees_all_chatbots(user):
        return Chatbot.objects.all()
    return _assigned_chatbots(user)


def _assigned_chatbots(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Chatbot]:
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Chatbot.objects.none()
    return Chatbot.objects.filter(reviewers=user)


def chatbot_ids_for_user(user: AbstractBaseUser | AnonymousUser) -> list[int] | None:
    """The ids of the chatbots `user` may see, or None for "every chatbot" (no filter needed).

    None lets aggregates over all chatbots use the plain time indexes instead of an IN list.
    """
    if user_sees_all_chatbots(user):
        return None
    return list(chatbots_for_user(user).values_list("id", flat=True))


def chatbot_scoped(
    queryset: QuerySet,
    scope: AbstractBaseUser | AnonymousUser | Collection[int] | None,
    *,
    field: str = "chatbot",
) -> QuerySet:
    """`queryset` limited to the chatbots in `scope`, reached through `field` ("pk" for Chatbot).

    `scope` is a user (the rows of the chatbots they may see: one subquery, no filter at all for
    those who see every chatbot), chatbot ids (`chatbot_ids_for_user`, or one chosen chatbot: an
    IN list), or None for every chatbot — no filter, so aggregates use the plain time indexes and rows of no
    chatbot (all-chatbot alert rules, chatmon's own calls) are kept.
    """
    if scope is None:
        return queryset
    # request.user is a lazy proxy, which passes for a collection but not for another class.
    if not isinstance(scope, (AbstractBaseUser, AnonymousUser)):
        # `<field>_id`: the hourly rollups hold a bare chatbot_id, not a foreign key.
        return queryset.filter(**{"pk__in" if field == "pk" else f"{field}_id__in": list(scope)})
    if user_sees_all_chatbots(scope):
        return queryset
    return queryset.filter(**{f"{field}__in": _assigned_chatbots(scope)})
