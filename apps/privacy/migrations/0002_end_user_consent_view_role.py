"""Reviewers and chatbot admins may read end users' stated consent in the admin (read only for
everyone: consent changes only through POST /api/v1/end-users/{user_id}/consent)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = ("Reviewer", "Chatbot admin")


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="privacy", codename="view_enduserconsent")
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(view)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    apps.get_model("auth", "Group").permissions.through.objects.filter(
        permission__in=Permission.objects.filter(content_type__app_label="privacy", codename="view_enduserconsent")
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0001_end_user_consent"),
        ("review", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
