"""The staff roles get the datasets models (apps/review/migrations/0002_roles.py made the groups).

Reviewer: builds datasets from what they review (add/change datasets and items), starts runs and
reads their results; targets are read-only. Chatbot admin: all of that plus managing targets
(they hold endpoint secrets) and deleting datasets, items and runs.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REVIEWER_PERMISSIONS = [
    ("datasets", "view_dataset"),
    ("datasets", "add_dataset"),
    ("datasets", "change_dataset"),
    ("datasets", "view_datasetitem"),
    ("datasets", "add_datasetitem"),
    ("datasets", "change_datasetitem"),
    ("datasets", "view_datasetitemversion"),
    ("datasets", "view_experimenttarget"),
    ("datasets", "view_experimentrun"),
    ("datasets", "add_experimentrun"),
    ("datasets", "view_experimentitemresult"),
]
CHATBOT_ADMIN_PERMISSIONS = [
    *REVIEWER_PERMISSIONS,
    ("datasets", "delete_dataset"),
    ("datasets", "delete_datasetitem"),
    ("datasets", "delete_experimentrun"),
    ("datasets", "add_experimenttarget"),
    ("datasets", "change_experimenttarget"),
    ("datasets", "delete_experimenttarget"),
]
GROUPS = (("Reviewer", REVIEWER_PERMISSIONS), ("Chatbot admin", CHATBOT_ADMIN_PERMISSIONS))


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    apps.get_model("auth", "Group").permissions.through.objects.filter(
        permission__in=Permission.objects.filter(content_type__app_label="datasets")
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0001_datasets_experiments"),
        ("review", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
