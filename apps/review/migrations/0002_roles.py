"""The two staff roles as groups with model permissions.

Reviewer: reads conversations, turns, LLM calls, evaluations, feedback and clusters, and reviews
conversations (change). Which chatbots a reviewer sees is `Chatbot.reviewers` (apps.chatbots.access).
Chatbot admin: everything a reviewer has on every chatbot, plus managing chatbots, API keys,
detection rules, model prices, alert rules, notification channels and alert events.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REVIEWER_GROUP = "Reviewer"
CHATBOT_ADMIN_GROUP = "Chatbot admin"

REVIEWER_PERMISSIONS = [
    ("conversations", "view_conversation"),
    ("conversations", "change_conversation"),
    ("conversations", "view_turn"),
    ("conversations", "view_llmcall"),
    ("review", "view_flaggedconversation"),
    ("review", "change_flaggedconversation"),
    ("evaluations", "view_evaluation"),
    ("feedback", "view_feedback"),
    ("clustering", "view_clusterrun"),
    ("clustering", "view_cluster"),
    ("clustering", "view_clustermember"),
]


def _crud(app_label: str, model: str) -> list[tuple[str, str]]:
    return [(app_label, f"{verb}_{model}") for verb in ("add", "change", "delete", "view")]


CHATBOT_ADMIN_PERMISSIONS = [
    *REVIEWER_PERMISSIONS,
    *_crud("chatbots", "chatbot"),
    *_crud("chatbots", "apikey"),
    *_crud("risk", "detectionrule"),
    *_crud("ingest", "modelprice"),
    *_crud("alerts", "alertrule"),
    *_crud("alerts", "notificationchannel"),
    ("alerts", "view_alertevent"),
    ("alerts", "change_alertevent"),
    ("alerts", "view_delivery"),
    ("clustering", "add_clusterrun"),
    ("audit", "view_auditevent"),
]


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ((REVIEWER_GROUP, REVIEWER_PERMISSIONS), (CHATBOT_ADMIN_GROUP, CHATBOT_ADMIN_PERMISSIONS)):
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is None:
                raise RuntimeError(f"Permission {app_label}.{codename} does not exist; cannot set up {name!r}.")
            group.permissions.add(permission)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[REVIEWER_GROUP, CHATBOT_ADMIN_GROUP]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("review", "0001_initial"),
        ("conversations", "0001_initial"),
        ("chatbots", "0001_initial"),
        ("evaluations", "0001_initial"),
        ("feedback", "0001_initial"),
        ("clustering", "0001_initial"),
        ("alerts", "0001_initial"),
        ("risk", "0001_initial"),
        ("ingest", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
