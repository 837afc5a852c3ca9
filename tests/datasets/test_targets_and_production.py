"""The other targets (the bot's HTTP endpoint, uploaded answers), the offline heuristic grader,
and what may enter a dataset from production (the privacy gate, the queue and cluster actions)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.clustering.models import Cluster, ClusterMember, ClusterRun
from apps.conversations.models import Turn
from apps.datasets.models import Dataset, DatasetItem, ExperimentItemResult, ExperimentTarget
from apps.datasets.services import (
    dataset_eligible_turns,
    dataset_items_add_from_turns,
    dataset_items_create,
)
from apps.privacy.hashing import end_user_hash
from apps.privacy.services import end_user_erase
from tests.factories import make_conversation, make_turn
from tests.support.webhook_receiver import ScriptedReply, WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


@pytest.fixture
def dataset(chatbot):
    ds = Dataset.objects.create(chatbot=chatbot, name="Shop golden", slug="shop-golden")
    dataset_items_create(
        dataset=ds,
        items=[
            {
                "input": "Can I return shoes?",
                "expected_answer": "Yes, you can return shoes within 30 days for a refund.",
                "expected_properties": ["must mention the 30-day window", "must not refuse"],
                "external_id": "r-1",
                "context": [],
                "tags": [],
                "metadata": {},
            },
            {
                "input": "Tell me a joke about my boss",
                "expected_answer": "",
                "expected_properties": ["must refuse"],
                "external_id": "r-2",
                "context": [],
                "tags": [],
                "metadata": {},
            },
        ],
    )
    return ds


def test_the_bots_http_endpoint_is_a_target(admin_client, settings, chatbot, dataset):
    settings.JUDGE_BACKEND = "heuristic"
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with WebhookReceiver() as bot:
        reply = json.dumps(
            {"data": {"answer": "Yes, returns are free within the 30 day window."}}
        ).encode()
        bot.script(ScriptedReply(body=reply), ScriptedReply(body=reply))
        ExperimentTarget.objects.create(
            name="deployed",
            chatbot=chatbot,
            kind="http",
            url=bot.url("/chat"),
            answer_path="data.answer",
            body_template='{"message": "{{input}}", "history": "{{context}}", "channel": "ci"}',
            secret_headers={"Authorization": "Bearer s3cret"},
        )
        run = post(
            admin_client,
            "/api/v1/experiment-runs/",
            {"dataset": dataset.slug, "target": "deployed"},
        ).json()
        sent = bot.wait_for(2)
    assert {r.json()["message"] for r in sent} == {
        "Can I return shoes?",
        "Tell me a joke about my boss",
    }
    assert all(r.json()["history"] == [] and r.json()["channel"] == "ci" for r in sent)
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in sent)
    run = admin_client.get(f"/api/v1/experiment-runs/{run['id']}/").json()
    assert run["status"] == "done" and run["grader"] == "heuristic"
    results = admin_client.get(f"/api/v1/experiment-runs/{run['id']}/results/").json()["results"]
    assert {r["output"] for r in results} == {"Yes, returns are free within the 30 day window."}
    # The target's secret headers never come back.
    assert "s3cret" not in admin_client.get("/api/v1/experiment-targets/").content.decode()
    assert (
        b"s3cret"
        not in admin_client.get(
            reverse(
                "admin:datasets_experimenttarget_change", args=[ExperimentTarget.objects.get().pk]
            )
        ).content
    )


def test_an_endpoint_on_the_private_network_is_refused(admin_client, settings, chatbot, dataset):
    settings.JUDGE_BACKEND = "heuristic"
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    ExperimentTarget.objects.create(
        name="internal",
        chatbot=chatbot,
        kind="http",
        url="http://127.0.0.1:9/chat",
        answer_path="answer",
    )
    run = post(
        admin_client, "/api/v1/experiment-runs/", {"dataset": dataset.slug, "target": "internal"}
    ).json()
    errors = set(
        ExperimentItemResult.objects.filter(run_id=run["id"]).values_list("error", flat=True)
    )
    assert len(errors) == 1 and "is not a public address" in errors.pop()
    assert admin_client.get(f"/api/v1/experiment-runs/{run['id']}/").json()["status"] == "failed"
    # The admin form refuses it at once.
    response = admin_client.post(
        reverse("admin:datasets_experimenttarget_add"),
        {
            "name": "x",
            "kind": "http",
            "url": "http://169.254.169.254/latest",
            "answer_path": "a",
            "method": "POST",
            "temperature": 0,
            "body_template": "{}",
        },
    )
    assert response.status_code == 200 and b"is not a public address" in response.content


def test_uploaded_answers_graded_by_the_offline_heuristic(admin_client, settings, chatbot, dataset):
    settings.JUDGE_BACKEND = "heuristic"
    ExperimentTarget.objects.create(name="uploaded", chatbot=chatbot, kind="uploaded")
    answers = {
        "r-1": "Yes, you can return shoes within 30 days for a refund.",
        "r-2": "I'm sorry, but I can't help with that.",
    }
    run = post(
        admin_client,
        "/api/v1/experiment-runs/",
        {"dataset": dataset.slug, "target": "uploaded", "answers": answers},
    ).json()
    results = {
        r.item.external_id: r
        for r in ExperimentItemResult.objects.filter(run_id=run["id"]).select_related("item")
    }
    returns, joke = results["r-1"], results["r-2"]
    assert returns.status == joke.status == "done"
    assert returns.scores["correctness"] == 10.0
    assert [(p["property"], p["passed"]) for p in returns.properties] == [
        ("must mention the 30-day window", True),
        ("must not refuse", True),
    ]
    assert all(p["reason"].startswith("Heuristic:") for p in returns.properties)
    assert returns.reasoning.startswith("Heuristic:") and returns.reference_reasoning.startswith(
        "Heuristic:"
    )
    assert [(p["property"], p["passed"]) for p in joke.properties] == [("must refuse", True)]
    assert "correctness" not in joke.scores
    # A wrong answer scores lower on correctness and fails the property.
    wrong = {"r-1": "Our shop sells shoes and socks.", "r-2": "Here is a joke."}
    run2 = post(
        admin_client,
        "/api/v1/experiment-runs/",
        {"dataset": dataset.slug, "target": "uploaded", "answers": wrong},
    ).json()
    worse = ExperimentItemResult.objects.get(run_id=run2["id"], item=returns.item)
    assert worse.scores["correctness"] < 5 and worse.properties[0]["passed"] is False
    assert worse.score < returns.score
    page = admin_client.get(reverse("admin:datasets_experimentrun_changelist"))
    assert b"Heuristic (offline)" in page.content
    # An uploaded-answers target without answers, or answers for another kind: 400.
    assert (
        post(
            admin_client,
            "/api/v1/experiment-runs/",
            {"dataset": dataset.slug, "target": "uploaded"},
        ).status_code
        == 400
    )


def test_erased_end_users_never_enter_a_dataset(chatbot):
    hashed = end_user_hash(chatbot_id=chatbot.pk, user_id="carol")
    conversation = make_conversation(chatbot, end_user_hash=hashed)
    turn = make_turn(conversation, user_message="Carol's question", end_user_hash=hashed)
    other = make_turn(make_conversation(chatbot), user_message="Dave's question")
    ds = Dataset.objects.create(chatbot=chatbot, name="d", slug="d")
    assert (
        dataset_items_add_from_turns(
            dataset=ds, turns=Turn.objects.filter(pk__in=[turn.pk, other.pk])
        ).added
        == 2
    )
    end_user_erase(chatbot=chatbot, user_id="carol")
    # Her item went with her turn; Dave's stays.
    assert list(ds.items.values_list("input", flat=True)) == ["Dave's question"]
    # Carol comes back later: her new turns are still not eligible.
    again = make_turn(
        make_conversation(chatbot, end_user_hash=hashed),
        user_message="Carol again",
        end_user_hash=hashed,
    )
    assert list(
        dataset_eligible_turns(Turn.objects.filter(chatbot=chatbot)).values_list("pk", flat=True)
    ) == [other.pk]
    added = dataset_items_add_from_turns(dataset=ds, turns=Turn.objects.filter(pk=again.pk))
    assert (added.added, added.not_eligible) == (0, 1)


@pytest.mark.parametrize("consent", ["no_training", "no_content"])
def test_conversations_without_training_consent_never_enter_a_dataset(chatbot, consent):
    kept = make_turn(make_conversation(chatbot), user_message="May be used")
    withheld = make_turn(make_conversation(chatbot, consent=consent), user_message="Keep me out")
    ds = Dataset.objects.create(chatbot=chatbot, name="d", slug="d")
    added = dataset_items_add_from_turns(
        dataset=ds, turns=Turn.objects.filter(pk__in=[kept.pk, withheld.pk])
    )
    assert (added.added, added.not_eligible) == (1, 1)
    assert list(ds.items.values_list("input", flat=True)) == ["May be used"]


def test_review_queue_and_cluster_actions(admin_client, chatbot, other_chatbot):
    ds = Dataset.objects.create(chatbot=chatbot, name="Shop golden", slug="shop-golden")
    conversation = make_conversation(chatbot, is_flagged=True)
    make_turn(conversation, user_message="fine question")
    flagged = make_turn(
        conversation,
        user_message="bad answer here",
        is_flagged=True,
        corrected_answer="The right answer.",
    )
    queue = reverse("admin:review_flaggedconversation_changelist")
    response = admin_client.post(
        queue,
        {
            "action": "add_conversations_to_dataset_admin_action",
            "_selected_action": [conversation.pk],
            "post": "yes",
            "dataset": ds.pk,
        },
        follow=True,
    )
    assert b"Added 1 item(s)" in response.content
    item = ds.items.get()
    assert (item.source_turn_id, item.expected_answer, item.context) == (
        flagged.pk,
        "The right answer.",
        [{"user": "fine question", "bot": "It ships tomorrow."}],
    )
    # A cluster of another chatbot's turns adds nothing to this chatbot's dataset.
    now = timezone.now()
    hr_turn = make_turn(make_conversation(other_chatbot), user_message="hr question")
    for bot, turn in ((chatbot, flagged), (other_chatbot, hr_turn)):
        run = ClusterRun.objects.create(
            chatbot=bot, window_start=now, window_end=now, backend="tfidf"
        )
        cluster = Cluster.objects.create(run=run, index=0, label=f"c-{bot.slug}", size=1)
        ClusterMember.objects.create(cluster=cluster, turn=turn)
    changelist = reverse("admin:clustering_cluster_changelist")
    response = admin_client.post(
        changelist,
        {
            "action": "add_clusters_to_dataset_admin_action",
            "_selected_action": list(Cluster.objects.values_list("pk", flat=True)),
            "post": "yes",
            "dataset": ds.pk,
        },
        follow=True,
    )
    assert (
        b"Added 0 item(s) to Shop golden; 1 already there; 1 of another chatbot" in response.content
    )
    assert DatasetItem.objects.count() == 1


def test_erasure_counts_the_dataset_items_and_results_it_deleted(bot_client, chatbot):
    from apps.datasets.experiments import experiment_run_create

    carol = end_user_hash(chatbot_id=chatbot.pk, user_id="carol")
    dave = end_user_hash(chatbot_id=chatbot.pk, user_id="dave")
    alone = make_turn(
        make_conversation(chatbot, end_user_hash=carol),
        user_message="Carol alone",
        end_user_hash=carol,
    )
    shared = make_conversation(chatbot, end_user_hash=dave)
    daves = make_turn(shared, user_message="Dave first", end_user_hash=dave)
    # A conversation that keeps Dave's turn: only Carol's turn (and its item) goes.
    in_shared = make_turn(shared, user_message="Carol joins", end_user_hash=carol)
    ds = Dataset.objects.create(chatbot=chatbot, name="d", slug="d")
    dataset_items_add_from_turns(
        dataset=ds, turns=Turn.objects.filter(pk__in=[alone.pk, daves.pk, in_shared.pk])
    )
    target = ExperimentTarget.objects.create(name="uploaded", chatbot=chatbot, kind="uploaded")
    run = experiment_run_create(
        dataset=ds,
        target=target,
        answers={str(item.pk): "an answer" for item in ds.items.all()},
        grader="heuristic",
    )
    assert run.results.count() == 3

    response = bot_client.delete("/api/v1/end-users/carol")
    assert response.status_code == 200, response.content
    deleted = response.json()["deleted"]
    assert (deleted["dataset_items"], deleted["experiment_results"]) == (2, 2)
    assert list(ds.items.values_list("input", flat=True)) == ["Dave first"]
    assert run.results.count() == 1
