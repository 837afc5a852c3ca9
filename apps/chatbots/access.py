"""Who may see which chatbot's data: one rule for the admin and the staff API.

Superusers and members of the "Chatbot admin" group see every chatbot; members of the
"Reviewer" group (and any other staff) see only the chatbots they are assigned to
(`Chatbot.reviewers`).
"""

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
    """The chatbots `user` may see; filter any chatbot-owned queryset with `chatbot__in=`."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Chatbot.objects.none()
    if user_sees_all_chatbots(user):
        return Chatbot.objects.all()
    return Chatbot.objects.filter(reviewers=user)


def chatbot_ids_for_user(user: AbstractBaseUser | AnonymousUser) -> list[int] | None:
    """The ids of the chatbots `user` may see, or None for "every chatbot" (no filter needed).

    None lets aggregates over all chatbots use the plain time indexes instead of an IN list.
    """
    if user_sees_all_chatbots(user):
        return None
    return list(chatbots_for_user(user).values_list("id", flat=True))
