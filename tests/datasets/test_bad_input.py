"""Whatever a client sends to the datasets API about rows that exist: a 4xx or a success, never a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.datasets.models import Dataset, ExperimentTarget
from apps.datasets.services import dataset_items_create

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "\x00", "latest", "-1", "1e999", "{{input}}"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
item_like = st.fixed_dictionaries(
    {},
    optional={
        k: values
        for k in (
            "input",
            "context",
            "expected_answer",
            "expected_properties",
            "tags",
            "metadata",
            "id",
        )
    },
)


@pytest.fixture
def rows(db, chatbot, settings):
    settings.JUDGE_BACKEND = "heuristic"
    dataset = Dataset.objects.create(chatbot=chatbot, name="d", slug="d")
    item = dataset_items_create(
        dataset=dataset,
        items=[
            {
                "input": "hi",
                "context": [],
                "expected_answer": "hello",
                "expected_properties": [],
                "tags": [],
                "metadata": {},
            }
        ],
    )[0]
    ExperimentTarget.objects.create(name="up", chatbot=chatbot, kind="uploaded")
    return dataset, item


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=st.one_of(values, st.lists(item_like, max_size=3)),
    patch=st.one_of(values, item_like),
    run=st.one_of(
        values,
        st.fixed_dictionaries(
            {"dataset": st.sampled_from(["d", "1", 1]), "target": st.sampled_from(["up", "x"])},
            optional={
                "answers": values,
                "note": values,
                "baseline": values,
                "max_drop": values,
                "max_regressions": values,
            },
        ),
    ),
    query=st.dictionaries(
        st.sampled_from(
            ["base", "baseline", "max_drop", "max_regressions", "status", "item", "tag", "x"]
        ),
        st.text(max_size=8),
        max_size=3,
    ),
)
def test_never_a_5xx(admin_client, rows, items, patch, run, query):
    dataset, item = rows
    calls = [
        admin_client.post(
            f"/api/v1/datasets/{dataset.pk}/items",
            json.dumps(items),
            content_type="application/json",
        ),
        admin_client.patch(
            f"/api/v1/dataset-items/{item.pk}/", json.dumps(patch), content_type="application/json"
        ),
        admin_client.post(
            "/api/v1/experiment-runs/", json.dumps(run), content_type="application/json"
        ),
        admin_client.post(
            "/api/v1/experiment-runs/gate/", json.dumps(run), content_type="application/json"
        ),
        admin_client.get("/api/v1/dataset-items/", query),
    ]
    for run_id in dataset.runs.values_list("pk", flat=True)[:2]:
        calls += [
            admin_client.get(f"/api/v1/experiment-runs/{run_id}/compare/", query),
            admin_client.get(f"/api/v1/experiment-runs/{run_id}/verdict/", query),
            admin_client.get(f"/api/v1/experiment-runs/{run_id}/results/", query),
        ]
    for response in calls:
        assert response.status_code < 500, (response.status_code, response.content[:300])
