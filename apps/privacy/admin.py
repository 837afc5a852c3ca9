"""Admin pieces for privacy: the erasure action for the Conversation admin, and the read-only
list of end users' stated consent (EndUserConsentAdmin).

`erase_end_user_admin_action` is added to ConversationAdmin.actions (apps/review/admin.py).
It asks for confirmation first (like Django's delete_selected) and then erases, for every
selected conversation, the data of every end user with a turn in it (in that chatbot), then
what is left of the conversation (turns sent without an end user).

`ConversationDeletionAdminMixin` routes Django's own delete view and "delete selected" action
through `conversations_delete` (cluster recount, sessions, audit by internal id), and makes the
admin's LogEntry and message name the conversation by internal id: its external id can be a
phone number.
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apps.audit.services import audit_object_repr
from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.conversations.models import Conversation, Turn
from apps.core.admin import LargeTableAdmin

from .models import EndUserConsent
from .services import conversations_delete, conversations_erase


class ConversationDeletionAdminMixin:
    """For a ModelAdmin of Conversation (or a proxy of it)."""

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        # The turns, calls, steps and scores go with their conversation through the service;
        # their own admins refuse deleting them one by one, which must not block this.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)  # type: ignore[misc]
        return deleted, counts, set(), protected

    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        conversations_delete(conversation_ids=[obj.pk], actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        conversations_delete(conversation_ids=list(queryset.values_list("pk", flat=True)), actor=request.user)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> list[LogEntry]:
        # Django's default writes str(obj), the bot's conversation id, into django_admin_log.
        return LogEntry.objects.bulk_create([
            LogEntry(
                user_id=request.user.pk,
                content_type_id=ContentType.objects.get_for_model(obj, for_concrete_model=False).pk,
                object_id=str(obj.pk), object_repr=audit_object_repr(obj), action_flag=DELETION,
            )
            for obj in queryset
        ])

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        # The success message travels in the messages cookie: the internal id only.
        return super().response_delete(request, f"#{obj_id}", obj_id)  # type: ignore[misc]


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


@admin.register(EndUserConsent)
class EndUserConsentAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    """What end users stated over POST /api/v1/end-users/{user_id}/consent, read only: consent
    only changes through that service, which also applies it to what is already stored."""

    list_display = ("end_user_hash", "chatbot", "consent", "updated_at")
    list_filter = (ChatbotListFilter, "consent", ("updated_at", admin.DateFieldListFilter))
    list_select_related = ("chatbot",)
    search_fields = ("=end_user_hash",)
    search_help_text = "The end user's hashed id (exact)."
    ordering = ("-updated_at", "-id")
    fields = list_display
    readonly_fields = list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
