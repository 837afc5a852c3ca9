"""A test-only admin site showing FeedbackInline and RatingListFilter the way the Turn and
Conversation admins use them (those admins belong to the review app)."""

from django.contrib import admin
from django.urls import include, path

from apps.conversations.models import Conversation, Turn
from apps.feedback.admin import FeedbackInline, RatingListFilter, conversation_feedback_link

site = admin.AdminSite(name="feedback_test_admin")


@admin.register(Turn, site=site)
class TurnWithFeedbackAdmin(admin.ModelAdmin):
    inlines = [FeedbackInline]
    fields = ("user_message", "bot_response")


@admin.register(Conversation, site=site)
class ConversationWithRatingAdmin(admin.ModelAdmin):
    list_display = ("external_id", "thumbs_up", "thumbs_down")
    list_filter = [RatingListFilter]
    readonly_fields = ("feedback",)
    fields = ("external_id", "feedback")

    @admin.display(description="feedback")
    def feedback(self, conversation):
        return conversation_feedback_link(conversation)


urlpatterns = [
    path("test-admin/", site.urls),
    path("", include("chatmon.urls")),
]
