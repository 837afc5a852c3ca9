from django.contrib import admin

from .models import AlertEvent, AlertRule, Delivery, NotificationChannel


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "is_enabled")
    list_filter = ("kind", "is_enabled")
    filter_horizontal = ("chatbots",)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "chatbot", "metric", "comparison", "threshold", "window_minutes", "state", "last_value", "last_checked_at", "is_enabled")
    list_filter = ("state", "metric", "is_enabled", "chatbot")
    list_select_related = ("chatbot",)
    filter_horizontal = ("channels",)


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ("id", "rule", "chatbot", "status", "severity", "value", "threshold", "started_at", "resolved_at")
    list_filter = ("status", "severity")
    list_select_related = ("rule", "chatbot")
    raw_id_fields = ("turn", "acknowledged_by")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "channel", "kind", "status", "attempts", "response_code", "created_at", "sent_at")
    list_filter = ("status", "kind")
    list_select_related = ("channel",)
    raw_id_fields = ("event",)
