"""Items through the API and the admin (upload, export, versions), who may see what, bad input."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from apps.datasets.models import Dataset, DatasetItem, DatasetItemVersion

pytestmark = pytest.mark.django_db

ITEMS = [
    {
        "input": "Can I return shoes?",
        "expected_answer": "Yes, within 30 days.",
        "expected_properties": ["must mention the 30-day window"],
        "tags": ["refunds"],
        "id": "r-1",
    },
    {
        "input": "Do you ship to Austria?",
        "context": [{"user": "Hi", "bot": "Hello!"}],
        "metadata": {"source": "faq"},
    },
]


def post(client: Client, path: str, body) -> object:
    return client.post(path, json.dumps(body), content_type="application/json")


@pytest.fixture
def shop_dataset(chatbot):
    return Dataset.objects.create(chatbot=chatbot, name="Shop golden", slug="shop-golden")


@pytest.fixture
def hr_dataset(other_chatbot):
    return Dataset.objects.create(chatbot=other_chatbot, name="HR golden", slug="hr-golden")


def test_items_api_with_a_staff_token_and_jsonl_export(bob, shop_dataset):
    token = Token.objects.create(user=bob)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = post(client, f"/api/v1/datasets/{shop_dataset.pk}/items", ITEMS)
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 2
    assert DatasetItemVersion.objects.filter(item__dataset=shop_dataset, number=1).count() == 2
    exported = client.get(f"/api/v1/datasets/{shop_dataset.pk}/export/")
    lines = [
        json.loads(line) for line in b"".join(exported.streaming_content).decode().splitlines()
    ]
    assert [(line["id"], line["input"], line["version"]) for line in lines] == [
        ("r-1", "Can I return shoes?", 1),
        (str(lines[1]["item"]), "Do you ship to Austria?", 1),
    ]
    assert lines[0]["expected_properties"] == ["must mention the 30-day window"]
    assert lines[1]["context"] == [{"user": "Hi", "bot": "Hello!"}]
    # The export uploads again as it is (the admin's upload takes JSONL).
    listing = client.get("/api/v1/datasets/").json()["results"]
    assert [(d["slug"], d["items"]) for d in listing] == [("shop-golden", 2)]


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "non-empty"),
        ("text", "non-empty"),
        ([{"expected_answer": "no input"}], "item 0: input is required"),
        ([{"input": "ok"}, {"input": 3}], "item 1: input must be a string"),
        ([{"input": "ok", "colour": "red"}], "unknown field(s): colour"),
        ([{"input": "ok", "context": [{"user": "a", "system": "b"}]}], "context must be a list"),
        (
            [{"input": "ok", "tags": "x", "expected_properties": [1]}],
            "expected_properties must be a list of strings",
        ),
        ([{"input": "ok", "metadata": [1]}], "metadata must be a JSON object"),
    ],
)
def test_bad_items_are_a_400_and_store_nothing(admin_client, shop_dataset, body, message):
    response = post(admin_client, f"/api/v1/datasets/{shop_dataset.pk}/items", body)
    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert not DatasetItem.objects.exists()


def test_malformed_json_and_unknown_query_parameters_are_400(admin_client, shop_dataset):
    response = admin_client.post(
        f"/api/v1/datasets/{shop_dataset.pk}/items", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert admin_client.get("/api/v1/datasets/?colour=red").status_code == 400
    assert admin_client.get(f"/api/v1/datasets/{shop_dataset.pk}/export/?x=1").status_code == 400
    assert (
        post(
            admin_client, "/api/v1/experiment-runs/", {"dataset": "nope", "target": "nope"}
        ).status_code
        == 400
    )
    assert (
        post(admin_client, "/api/v1/experiment-runs/", {"dataset": shop_dataset.slug}).status_code
        == 400
    )
    assert (
        post(
            admin_client,
            "/api/v1/experiment-runs/gate/",
            {"dataset": shop_dataset.slug, "target": "x", "max_drop": -1},
        ).status_code
        == 400
    )


def test_scoping_non_staff_and_other_chatbots(
    client, django_user_model, bob_client, charlie_client, shop_dataset, hr_dataset
):
    # Not staff: 403 (DRF's IsAdminUser), not logged in: 403 too.
    user = django_user_model.objects.create_user("dora", password="pw")
    dora = Client()
    dora.force_login(user)
    assert dora.get("/api/v1/datasets/").status_code == 403
    assert client.get("/api/v1/datasets/").status_code == 403
    # bob reviews the shop chatbot only: the HR dataset is a 404, like a missing one.
    assert [d["slug"] for d in bob_client.get("/api/v1/datasets/").json()["results"]] == [
        "shop-golden"
    ]
    assert bob_client.get(f"/api/v1/datasets/{hr_dataset.pk}/").status_code == 404
    assert post(bob_client, f"/api/v1/datasets/{hr_dataset.pk}/items", ITEMS).status_code == 404
    assert bob_client.get(f"/api/v1/datasets/{hr_dataset.pk}/export/").status_code == 404
    # Nor may he create a dataset for it, or a shared one.
    assert (
        post(
            bob_client,
            "/api/v1/datasets/",
            {"name": "x", "slug": "x", "chatbot": hr_dataset.chatbot_id},
        ).status_code
        == 400
    )
    assert post(bob_client, "/api/v1/datasets/", {"name": "x", "slug": "x"}).status_code == 400
    assert (
        post(
            bob_client,
            "/api/v1/datasets/",
            {"name": "x", "slug": "x", "chatbot": shop_dataset.chatbot_id},
        ).status_code
        == 201
    )
    # charlie is assigned to nothing.
    assert charlie_client.get("/api/v1/datasets/").json()["results"] == []
    assert charlie_client.get(f"/api/v1/datasets/{shop_dataset.pk}/").status_code == 404
    # The admin is scoped the same way: bob (Reviewer role) works on his chatbot's dataset only.
    assert (
        bob_client.get(reverse("admin:datasets_dataset_change", args=[shop_dataset.pk])).status_code
        == 200
    )
    assert bob_client.get(reverse("admin:datasets_experimentrun_changelist")).status_code == 200
    assert bob_client.get(reverse("admin:datasets_experimenttarget_add")).status_code == 403
    assert (
        bob_client.get(reverse("admin:datasets_dataset_change", args=[hr_dataset.pk])).status_code
        == 404
    )
    assert (
        bob_client.get(reverse("admin:datasets_dataset_export", args=[hr_dataset.pk])).status_code
        == 404
    )


def test_admin_upload_jsonl_and_csv_edit_makes_a_version(admin_client, shop_dataset):
    url = reverse("admin:datasets_dataset_upload", args=[shop_dataset.pk])
    jsonl = "\n".join(json.dumps(i) for i in ITEMS).encode()
    response = admin_client.post(url, {"file": SimpleUploadedFile("items.jsonl", jsonl)})
    assert response.status_code == 302
    csv_body = b"input,expected_answer,expected_properties,tags\nWhere is order 7?,It ships today.,must mention today | must be polite,orders\n"
    assert (
        admin_client.post(url, {"file": SimpleUploadedFile("items.csv", csv_body)}).status_code
        == 302
    )
    item = DatasetItem.objects.get(input="Where is order 7?")
    assert item.expected_properties == ["must mention today", "must be polite"] and item.tags == [
        "orders"
    ]
    # A bad line rejects the file, naming the line.
    bad = admin_client.post(
        url, {"file": SimpleUploadedFile("bad.jsonl", b'{"input": "ok"}\n{"input": ""}\n')}
    )
    assert bad.status_code == 400 and b"line 2: input is required" in bad.content
    assert (
        admin_client.post(
            url, {"file": SimpleUploadedFile("bad.csv", b"question\nhi\n")}
        ).status_code
        == 400
    )
    assert shop_dataset.items.count() == 3
    # Editing in the admin writes version 2; version 1 is kept as it was.
    change = reverse("admin:datasets_datasetitem_change", args=[item.pk])
    response = admin_client.post(
        change,
        {
            "dataset": shop_dataset.pk,
            "external_id": "",
            "input": item.input,
            "context": "[]",
            "expected_answer": "It ships today by noon.",
            "expected_properties": json.dumps(item.expected_properties),
            "tags": '["orders"]',
            "metadata": "{}",
        },
    )
    assert response.status_code == 302, response.content
    item.refresh_from_db()
    assert item.version == 2
    assert list(item.versions.values_list("number", "expected_answer")) == [
        (1, "It ships today."),
        (2, "It ships today by noon."),
    ]
    # The admin validates like the API: properties must be strings.
    response = admin_client.post(
        change,
        {
            "dataset": shop_dataset.pk,
            "external_id": "",
            "input": item.input,
            "context": "[]",
            "expected_answer": "x",
            "expected_properties": "[1, 2]",
            "tags": "[]",
            "metadata": "{}",
        },
    )
    assert (
        response.status_code == 200
        and b"expected_properties must be a list of strings" in response.content
    )
    assert DatasetItem.objects.get(pk=item.pk).version == 2
    page = admin_client.get(reverse("admin:datasets_dataset_change", args=[shop_dataset.pk]))
    assert (
        page.status_code == 200
        and b"Where is order 7?" in page.content
        and b"Upload items" in page.content
    )
