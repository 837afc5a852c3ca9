"""Experiment targets' secret headers encrypted at rest (apps.core.encryption).

The plaintext JSON column is copied, encrypted, into a text column, then dropped; the text
column takes its name. Reversing decrypts them back (with the SECRET_KEY that encrypted them).
"""

import json

from django.db import migrations, models

import apps.core.encryption


def encrypt_existing(apps, schema_editor):
    from apps.core.encryption import secret_encrypt

    ExperimentTarget = apps.get_model("datasets", "ExperimentTarget")
    for target in ExperimentTarget.objects.exclude(secret_headers={}).only("pk", "secret_headers"):
        ExperimentTarget.objects.filter(pk=target.pk).update(
            secret_headers_encrypted=secret_encrypt(json.dumps(target.secret_headers, ensure_ascii=False))
        )


def decrypt_existing(apps, schema_editor):
    from apps.core.encryption import secret_decrypt

    ExperimentTarget = apps.get_model("datasets", "ExperimentTarget")
    for target in ExperimentTarget.objects.exclude(secret_headers_encrypted="").only("pk", "secret_headers_encrypted"):
        ExperimentTarget.objects.filter(pk=target.pk).update(
            secret_headers=json.loads(secret_decrypt(target.secret_headers_encrypted))
        )


class Migration(migrations.Migration):
    dependencies = [("datasets", "0003_result_claim_token")]

    operations = [
        migrations.AddField(
            model_name="experimenttarget",
            name="secret_headers_encrypted",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        migrations.RemoveField(model_name="experimenttarget", name="secret_headers"),
        migrations.RenameField(
            model_name="experimenttarget", old_name="secret_headers_encrypted", new_name="secret_headers"
        ),
        migrations.AlterField(
            model_name="experimenttarget",
            name="secret_headers",
            field=apps.core.encryption.EncryptedJSONField(
                blank=True,
                default=dict,
                help_text='Headers sent to the endpoint, e.g. {"Authorization": "Bearer …"}.',
            ),
        ),
    ]
