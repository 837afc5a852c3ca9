"""The demo's golden set (`seed_demo`): one dataset from the shop bot's reviewed turns and two
runs of it, graded by the offline heuristic with uploaded answers (no network, no key), so the
comparison page has content.

Run 1 ("demo:bot-today") is what the bot answered in production; run 2 ("demo:prompt-v2")
answers with the reviewers' corrections, except two items where v2 falls back — so the
comparison shows improvements and two regressions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q

from apps.chatbots.models import Chatbot
from apps.conversations.models import Turn

from .experiments import experiment_baseline_set, experiment_run_create
from .models import Dataset, ExperimentRun, ExperimentTarget
from .services import dataset_item_update, dataset_items_add_from_turns

DEMO_SLUG = "shop-golden"
V2_FALLBACK = "Sorry, I didn't understand. Could you rephrase your question?"


def demo_datasets_seed(
    *, chatbot: Chatbot, expected_answer_for: Callable[[Turn], str] | None = None, actor: Any = None
) -> dict[str, Any]:
    """`expected_answer_for`: what the team writes as the expected answer of an item whose turn
    has no correction (an edit: the item gets version 2)."""
    if Dataset.objects.filter(slug=DEMO_SLUG).exists():
        return {"datasets": 0}
    dataset = Dataset.objects.create(
        chatbot=chatbot,
        name="Shop golden set",
        slug=DEMO_SLUG,
        created_by=actor,
        description="Corrected and flagged production turns of the shop assistant: the regression set for prompt changes.",
    )
    corrected = (
        Turn.objects.filter(chatbot=chatbot).exclude(corrected_answer="").order_by("pk")[:14]
    )
    flagged = Turn.objects.filter(chatbot=chatbot, is_flagged=True, corrected_answer="").order_by(
        "pk"
    )[:12]
    turns = Turn.objects.filter(
        Q(pk__in=[t.pk for t in corrected]) | Q(pk__in=[t.pk for t in flagged])
    )
    dataset_items_add_from_turns(dataset=dataset, turns=turns, actor=actor)
    items = list(dataset.items.select_related("source_turn").order_by("pk"))
    for index, item in enumerate(items):
        changes: dict[str, Any] = {}
        if (
            not item.expected_answer
            and expected_answer_for is not None
            and item.source_turn is not None
        ):
            changes["expected_answer"] = expected_answer_for(item.source_turn)
        if item.source_turn and item.source_turn.intent in ("refund", "returns"):
            changes["expected_properties"] = ["must mention the 30-day window", "must not refuse"]
        if changes:
            items[index] = dataset_item_update(item=item, changes=changes, actor=actor)
    today = ExperimentTarget.objects.create(name="demo:bot-today", chatbot=chatbot, kind="uploaded")
    v2 = ExperimentTarget.objects.create(name="demo:prompt-v2", chatbot=chatbot, kind="uploaded")
    production = {str(i.pk): i.metadata.get("original_answer", "") for i in items}
    with_v2 = {str(i.pk): (i.expected_answer or production[str(i.pk)]) for i in items}
    for item in items[1:3]:
        with_v2[str(item.pk)] = V2_FALLBACK
    first = experiment_run_create(
        dataset=dataset,
        target=today,
        actor=actor,
        answers=production,
        note="answers the bot gave in production",
        grader="heuristic",
    )
    experiment_baseline_set(run=first)
    second = experiment_run_create(
        dataset=dataset,
        target=v2,
        actor=actor,
        answers=with_v2,
        note="candidate prompt v2",
        grader="heuristic",
    )
    return {
        "datasets": 1,
        "dataset_items": len(items),
        "experiment_runs": ExperimentRun.objects.filter(pk__in=[first.pk, second.pk]).count(),
    }
