"""Audit rows name their object by internal id: rewrite the names written before.

object_repr used to be `str(target)`: a conversation's external id (which can be a phone
number, `whatsapp:+49…`), a cluster's title drawn from end users' messages. Every row is
rewritten to "<verbose name> <object id>", as apps.audit.services writes it now.
"""

from django.db import migrations
from django.db.models import CharField, F, Value
from django.db.models.functions import Concat, Left


def object_repr_by_id(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    types = AuditEvent.objects.exclude(object_type="").values_list("object_type", flat=True).distinct()
    for object_type in list(types):
        try:
            name = str(apps.get_model(object_type)._meta.verbose_name)
        except (LookupError, ValueError):
            name = object_type.rpartition(".")[2]
        AuditEvent.objects.filter(object_type=object_type).update(
            object_repr=Left(Concat(Value(f"{name} "), F("object_id"), output_field=CharField()), 200)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(object_repr_by_id, migrations.RunPython.noop, elidable=True)]
