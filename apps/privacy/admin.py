"""Admin pieces for privacy: the erasure action for the Conversation admin.

`erase_end_user_admin_action` is added to ConversationAdmin.actions (apps/review/admin.py).
It asks for confirmation first (like Django's delete_selected) and then erases, for every
selected conversation, the data of every end user with a turn in it (in that chatbot), then
what is left of the conversation (turns sent without an end user).
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apps.conversations.models import Conversation, Turn

from .services import conversations_erase


@admin.action(description="Erase the end users of the selected conversations (all their data)")
def erase_end_user_admin_action(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
    if not request.user.has_perm("conversations.delete_conversation"):
        raise PermissionDenied
    # The changelist queryset is already limited to the chatbots this user may see.
    rows = list(queryset.values_list("id", "chatbot_id", "end_user_hash"))
    ids = [r[0] for r in rows]
    # Every end user with a turn in the selection (a conversation can have several).
    end_users = {(c, h) for _, c, h in rows if h} | set(
        Turn.objects.filter(conversation_id__in=ids).exclude(end_user_hash="")
        .values_list("chatbot_id", "end_user_hash").distinct()
    )
    # Hashes are keyed by chatbot, so a hash names one end user of one chatbot.
    hashes = {h for _, h in end_users}
    touched = set(
        Conversation.objects.filter(Q(end_user_hash__in=hashes) | Q(turns__end_user_hash__in=hashes))
        .values_list("pk", flat=True).distinct()
    ) if hashes else set()
    anonymous = sum(1 for i in ids if i not in touched)
    affected = len(touched) + anonymous
    if request.POST.get("post") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Erase end users?",
            "opts": modeladmin.model._meta,
            "queryset": queryset,
            "selected": [r[0] for r in rows],
            "end_users": len(end_users),
            "anonymous": anonymous,
            "affected": affected,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "erase_end_user_admin_action",
        }
        return TemplateResponse(request, "admin/privacy/erase_confirmation.html", context)
    results = conversations_erase(conversation_ids=[r[0] for r in rows], actor=request.user)
    conversations = sum(r.counts["conversations"] for r in results.values())
    turns = sum(r.counts["turns"] for r in results.values())
    modeladmin.message_user(
        request,
        f"Erased {len(end_users)} end user(s) and {anonymous} anonymous conversation(s): "
        f"{conversations} conversation(s), {turns} turn(s) deleted.",
        messages.SUCCESS,
    )
    return None
