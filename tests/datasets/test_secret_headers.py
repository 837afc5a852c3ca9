"""An HTTP target's secret headers are encrypted at rest with a key derived from SECRET_KEY:
the column holds a Fernet token, a rotation keeps them readable through SECRET_KEY_FALLBACKS
until `secrets_reencrypt` rewrote them, and a key lost without a fallback is a clear error
(never a 500, never an empty header sent)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from apps.core.encryption import UnreadableSecret, secret_decrypt
from apps.datasets.choices import ResultStatus
from apps.datasets.experiments import experiment_run_create
from apps.datasets.models import ExperimentTarget
from apps.datasets.services import dataset_items_create

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = {"Authorization": "Bearer s3cret-token"}


def _stored(target_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_headers FROM datasets_experimenttarget WHERE id = %s", [target_id]
        )
        return cursor.fetchone()[0]


def _target(chatbot) -> ExperimentTarget:
    return ExperimentTarget.objects.create(
        name="deployed",
        chatbot=chatbot,
        kind="http",
        url="http://127.0.0.1:9/chat",
        answer_path="answer",
        secret_headers=HEADERS,
    )


def test_the_column_holds_ciphertext_and_the_model_the_headers(chatbot):
    target = _target(chatbot)
    raw = _stored(target.pk)
    assert "s3cret" not in raw and "Authorization" not in raw
    with pytest.raises(ValueError):
        json.loads(raw)
    assert json.loads(secret_decrypt(raw)) == HEADERS
    assert ExperimentTarget.objects.get(pk=target.pk).secret_headers == HEADERS
    # Two saves of the same headers give different tokens (Fernet's random IV).
    target.save()
    assert _stored(target.pk) != raw


def test_rotation_through_the_fallback_and_reencrypt(settings, chatbot):
    target = _target(chatbot)
    old_key, before = settings.SECRET_KEY, _stored(target.pk)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" * 6, [old_key]
    assert ExperimentTarget.objects.get(pk=target.pk).secret_headers == HEADERS
    call_command("secrets_reencrypt", stdout=io.StringIO())
    assert _stored(target.pk) != before
    settings.SECRET_KEY_FALLBACKS = []  # the old key is gone: the rewritten token still opens
    assert ExperimentTarget.objects.get(pk=target.pk).secret_headers == HEADERS


def test_a_key_lost_without_fallback_is_a_clear_error(
    settings, client, admin_user, chatbot, dataset
):
    settings.JUDGE_BACKEND = "heuristic"
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    target = _target(chatbot)
    dataset_items_create(dataset=dataset, items=[{"input": "Can I return shoes?"}])
    old_key, ciphertext = settings.SECRET_KEY, _stored(target.pk)
    settings.SECRET_KEY = "an-unrelated-key-" * 4
    admin_client = client
    admin_client.force_login(admin_user)  # the old key's session ended with it

    target = ExperimentTarget.objects.get(pk=target.pk)
    assert isinstance(target.secret_headers, UnreadableSecret)
    run = experiment_run_create(dataset=dataset, target=target)
    result = run.results.get()
    assert result.status == ResultStatus.FAILED and "cannot be decrypted" in result.error
    # The admin page shows why, and will not save the target until the headers are entered again.
    change = reverse("admin:datasets_experimenttarget_change", args=[target.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and b"cannot be decrypted" in page.content
    form = {
        "name": "deployed",
        "chatbot": chatbot.pk,
        "kind": "http",
        "url": "http://127.0.0.1:9/chat",
        "method": "POST",
        "answer_path": "answer",
        "body_template": "{}",
        "temperature": 0,
    }
    refused = admin_client.post(change, form)
    assert refused.status_code == 200 and b"cannot be decrypted" in refused.content
    with pytest.raises(CommandError, match="deployed"):
        call_command("secrets_reencrypt", stdout=io.StringIO())
    # Saving the row for another reason keeps the ciphertext: the old key opens it again.
    target.save()
    assert _stored(target.pk) == ciphertext
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert ExperimentTarget.objects.get(pk=target.pk).secret_headers == HEADERS
    # Entering the headers again stores them under the current key.
    settings.SECRET_KEY_FALLBACKS = []
    saved = admin_client.post(change, {**form, "secret_headers_text": json.dumps({"X-Key": "k2"})})
    assert saved.status_code == 302, saved.content[:2000]
    assert ExperimentTarget.objects.get(pk=target.pk).secret_headers == {"X-Key": "k2"}


def test_the_migration_encrypts_existing_rows(chatbot):
    executor = MigrationExecutor(connection)
    executor.migrate([("datasets", "0003_result_claim_token")])
    old = executor.loader.project_state([("datasets", "0003_result_claim_token")]).apps
    OldTarget = old.get_model("datasets", "ExperimentTarget")  # noqa: N806 - a model class
    OldTarget.objects.create(
        name="legacy", kind="http", url="http://x.example/", secret_headers=HEADERS
    )
    OldTarget.objects.create(name="no-headers", kind="model", model="m")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    legacy = ExperimentTarget.objects.get(name="legacy")
    assert "s3cret" not in _stored(legacy.pk)
    assert legacy.secret_headers == HEADERS
    assert ExperimentTarget.objects.get(name="no-headers").secret_headers == {}
