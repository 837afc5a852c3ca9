"""Issue 19's "done means": a dataset built from reviewed production turns, two runs against the
local OpenAI-compatible server (the second with a worse prompt), compared, and the CI command
exiting 1 with the regressed items listed."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.conversations.choices import CallPurpose
from apps.conversations.models import LLMCall
from apps.datasets.models import DatasetItem, ExperimentItemResult, ExperimentRun

from .conftest import ANSWERS, REFUND_QUESTIONS, REFUSAL

# Transactional: runs are queued on commit, as in production (eager Celery then runs them at once).
pytestmark = pytest.mark.django_db(transaction=True)


def _review_and_add(admin_client, production_turns, dataset) -> list[DatasetItem]:
    """Reviewers correct the answers on the review API, then "Add to dataset" on the Turn admin."""
    for turn in production_turns:
        response = admin_client.post(
            f"/api/v1/conversations/{turn.conversation_id}/review/",
            json.dumps(
                {
                    "action": "correct",
                    "turn": turn.pk,
                    "corrected_answer": ANSWERS[turn.user_message],
                }
            ),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
    changelist = reverse("admin:conversations_turn_changelist")
    selected = [t.pk for t in production_turns]
    confirm = admin_client.post(
        changelist, {"action": "add_turns_to_dataset_admin_action", "_selected_action": selected}
    )
    assert confirm.status_code == 200 and b"Refunds golden" in confirm.content
    done = admin_client.post(
        changelist,
        {
            "action": "add_turns_to_dataset_admin_action",
            "_selected_action": selected,
            "post": "yes",
            "dataset": dataset.pk,
        },
        follow=True,
    )
    assert b"Added 4 item(s) to Refunds golden" in done.content
    return list(dataset.items.order_by("pk"))


def test_golden_set_from_review_two_runs_compare_and_ci_gate(
    admin_client, production_turns, dataset, targets, shop_server
):
    items = _review_and_add(admin_client, production_turns, dataset)
    assert [i.expected_answer for i in items] == [ANSWERS[t.user_message] for t in production_turns]
    assert all(i.context == [{"user": "Hello", "bot": "Hi! How can I help?"}] for i in items)
    assert all(i.source_turn_id for i in items)
    # Adding the same turns again adds nothing.
    admin_client.post(
        reverse("admin:conversations_turn_changelist"),
        {
            "action": "add_turns_to_dataset_admin_action",
            "_selected_action": [t.pk for t in production_turns],
            "post": "yes",
            "dataset": dataset.pk,
        },
    )
    assert dataset.items.count() == 4

    refund_item = next(i for i in items if i.input.startswith("Can I return"))
    response = admin_client.patch(
        f"/api/v1/dataset-items/{refund_item.pk}/",
        json.dumps({"expected_properties": ["must mention the 30-day window"]}),
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["version"] == 2

    # Run 1: the good prompt, through the API (eager Celery runs it at once), marked baseline.
    response = admin_client.post(
        "/api/v1/experiment-runs/",
        json.dumps({"dataset": "refunds-golden", "target": "prompt:v1"}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    first = response.json()
    assert first["status"] == "done" and first["done"] == 4 and first["failed"] == 0
    assert (
        admin_client.post(f"/api/v1/experiment-runs/{first['id']}/baseline/").json()["is_baseline"]
        is True
    )

    # The refund item is edited again after run 1: run 1 keeps the version it ran (2).
    response = admin_client.patch(
        f"/api/v1/dataset-items/{refund_item.pk}/",
        json.dumps({"tags": ["refunds", "production"]}),
        content_type="application/json",
    )
    assert response.json()["version"] == 3
    run1_result = ExperimentItemResult.objects.get(run_id=first["id"], item=refund_item)
    assert run1_result.item_version.number == 2
    assert run1_result.properties == [
        {
            "property": "must mention the 30-day window",
            "passed": True,
            "reason": "checked by the test server",
        }
    ]

    # Run 2: the worse prompt, through the CI command: exits 1 and lists the two refund items.
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "run_experiment",
            "--dataset",
            "refunds-golden",
            "--target",
            "prompt:v2",
            "--baseline",
            "latest",
            "--max-drop",
            "0.3",
            "--max-regressions",
            "0",
            stdout=out,
        )
    assert exit_info.value.code == 1
    text = out.getvalue()
    regressed_ids = {i.pk for i in items if i.input in REFUND_QUESTIONS}
    for item_id in regressed_ids:
        assert f"REGRESSED item {item_id}:" in text
    assert text.count("REGRESSED item") == 2
    assert "FAILED:" in text and "2 item(s) regressed (allowed 0)" in text
    assert "correctness" in text and "baseline: run" in text
    second = ExperimentRun.objects.exclude(pk=first["id"]).get()
    assert ExperimentItemResult.objects.get(run=second, item=refund_item).item_version.number == 3

    # The comparison API: deltas per criterion, regressed items worst first, word diffs.
    comparison = admin_client.get(f"/api/v1/experiment-runs/{second.pk}/compare/").json()
    assert comparison["base"] == first["id"]
    assert {r["item"] for r in comparison["regressed"]} == regressed_ids
    assert comparison["improved"] == []
    deltas = [r["delta"] for r in comparison["regressed"]]
    assert deltas == sorted(deltas) and all(d <= -1 for d in deltas)
    rows = {r["criterion"]: r for r in comparison["criteria"]}
    assert (
        rows["correctness"]["average_delta"] < 0 and rows["correctness"]["pass_rate_delta"] == -50.0
    )
    assert (
        rows["properties"]["candidate_pass_rate"] == 0.0
        and rows["properties"]["base_pass_rate"] == 100.0
    )
    refund = next(i for i in comparison["items"] if i["item"] == refund_item.pk)
    assert (
        refund["candidate_output"] == REFUSAL
        and "<ins>" in refund["diff_html"]
        and "<del>" in refund["diff_html"]
    )
    assert "Refuses a question" in refund["candidate_reasoning"]

    # The admin comparison page shows the same.
    page = admin_client.get(
        reverse("admin:datasets_experimentrun_compare", args=[first["id"], second.pk])
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert "2 regressed" in body and "<del>" in body and REFUSAL.replace("'", "&#x27;") in body

    # Every model call is an LLMCall with purpose "experiment": 4 target + 4 rubric + 4 reference per run.
    calls = LLMCall.objects.filter(purpose=CallPurpose.EXPERIMENT)
    assert calls.count() == 24
    assert calls.filter(function_name="experiment.target").count() == 8
    assert all(c.input_tokens > 0 and c.chatbot_id == dataset.chatbot_id for c in calls)

    # The gate over the API: the same verdict.
    verdict = admin_client.get(
        f"/api/v1/experiment-runs/{second.pk}/verdict/?baseline={first['id']}&max_regressions=2&max_drop=10"
    ).json()
    assert verdict["passed"] is True
    verdict = admin_client.get(
        f"/api/v1/experiment-runs/{second.pk}/verdict/?baseline=latest"
    ).json()
    assert verdict["passed"] is False and len(verdict["comparison"]["regressed"]) == 2


def test_ci_command_passes_without_regression(dataset, targets, shop_server):
    DatasetItem.objects.bulk_create([])
    from apps.datasets.services import dataset_items_create

    dataset_items_create(
        dataset=dataset, items=[{"input": q, "expected_answer": a} for q, a in ANSWERS.items()]
    )
    out = io.StringIO()
    call_command(
        "run_experiment",
        "--dataset",
        "refunds-golden",
        "--target",
        "prompt:v1",
        "--mark-baseline",
        stdout=out,
    )
    assert "no baseline to compare with" in out.getvalue() and "PASSED" in out.getvalue()
    out = io.StringIO()
    call_command(
        "run_experiment", "--dataset", "refunds-golden", "--target", "prompt:v1", stdout=out
    )
    assert "regressed: 0" in out.getvalue() and "PASSED" in out.getvalue()
    assert ExperimentRun.objects.filter(is_baseline=True).count() == 1


def test_transient_errors_retry_and_permanent_ones_fail_then_rerun(
    admin_client, dataset, targets, shop_server, model_settings
):
    from apps.datasets.services import dataset_items_create
    from tests.support.openai_server import ScriptedResponse

    model_settings.EXPERIMENT_CONCURRENCY = 1  # the script is consumed in order
    model_settings.EXPERIMENT_MAX_ATTEMPTS = 2
    dataset_items_create(
        dataset=dataset,
        items=[
            {
                "input": "Where is my order 1234?",
                "expected_answer": ANSWERS["Where is my order 1234?"],
            }
        ],
    )
    shop_server.script_chat(ScriptedResponse(status=429, headers={"Retry-After": "0"}))
    run = admin_client.post(
        "/api/v1/experiment-runs/",
        json.dumps({"dataset": dataset.slug, "target": "prompt:v1"}),
        content_type="application/json",
    ).json()
    result = ExperimentItemResult.objects.get(run_id=run["id"])
    assert (run["status"], result.status, result.attempts) == ("done", "done", 2)
    assert LLMCall.objects.filter(purpose=CallPurpose.EXPERIMENT, success=False).count() == 1

    shop_server.script_chat(ScriptedResponse(status=400))
    run = admin_client.post(
        "/api/v1/experiment-runs/",
        json.dumps({"dataset": dataset.slug, "target": "prompt:v1"}),
        content_type="application/json",
    ).json()
    result = ExperimentItemResult.objects.get(run_id=run["id"])
    assert (run["status"], run["failed"], result.attempts) == ("failed", 1, 1)
    assert "HTTP 400" in result.error
    page = admin_client.get(reverse("admin:datasets_experimentrun_changelist"))
    assert b"0/1 done \xc2\xb7 1 failed" in page.content
    # "Re-run failed items" (the admin action) runs it again, now successfully.
    admin_client.post(
        reverse("admin:datasets_experimentrun_changelist"),
        {"action": "rerun_failed", "_selected_action": [run["id"]]},
    )
    result.refresh_from_db()
    assert result.status == "done" and ExperimentRun.objects.get(pk=run["id"]).status == "done"


def test_ci_gate_over_the_api(
    admin_client, dataset, targets, shop_server, django_assert_max_num_queries
):
    from apps.datasets.services import dataset_items_create

    dataset_items_create(
        dataset=dataset, items=[{"input": q, "expected_answer": a} for q, a in ANSWERS.items()]
    )

    def gate(target: str) -> dict:
        response = admin_client.post(
            "/api/v1/experiment-runs/gate/",
            json.dumps({"dataset": dataset.slug, "target": target}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        return response.json()

    first = gate("prompt:v1")
    assert first["passed"] is True and first["baseline"] is None
    second = gate("prompt:v2")
    assert second["passed"] is False and second["baseline"] == first["run"]["id"]
    assert {i["input"] for i in second["comparison"]["regressed"]} == REFUND_QUESTIONS
    assert any("2 item(s) regressed" in r for r in second["reasons"])
    # The run list does not grow in queries with the runs.
    with django_assert_max_num_queries(6):
        assert len(admin_client.get("/api/v1/experiment-runs/").json()["results"]) == 2
