"""The review part of the demo (`seed_demo`), and the whole demo put together: the review layer is
the one that may use every other app (tests/core/test_layers.py)."""

import random
from typing import Any

from django.db.models import F

from apps.chatbots.models import Chatbot
from apps.ingest.demo import BANK, CHATBOTS, HR, SHOP, demo_alerts_seed, demo_clusters_seed

DEMO_REVIEWERS = (("ana", "Ana", "Reyes"), ("ben", "Ben", "Okafor"))


def demo_reviewers_ensure(*, chatbots: list[Chatbot]) -> list[Any]:
    """Two staff reviewers (Reviewer group, assigned to the demo chatbots) without a password:
    they appear as the authors of the demo reviews; nobody logs in as them."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from apps.chatbots.access import REVIEWER_GROUP

    users = []
    group = Group.objects.filter(name=REVIEWER_GROUP).first()
    for username, first, last in DEMO_REVIEWERS:
        user, created = get_user_model().objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com", "is_staff": True},
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        if group is not None:
            user.groups.add(group)
        for chatbot in chatbots:
            chatbot.reviewers.add(user)
        users.append(user)
    return users


def demo_reviews_seed(*, chatbots: list[Chatbot], rng: random.Random) -> dict[str, int]:
    """Reviews in every state, through the review services, on each chatbot's next riskiest items:
    resolved with a note and human scores, a false positive, one in review with a corrected
    answer, a conversation flagged by hand, and the rest left new."""
    from apps.conversations.models import Conversation, Turn
    from apps.evaluations.choices import CRITERIA
    from apps.evaluations.models import Evaluation
    from apps.review.services import (
        conversation_flag_manual,
        conversations_assign,
        conversations_review_status_set,
        turn_answer_correct,
        turn_human_score,
    )

    ana, ben = demo_reviewers_ensure(chatbots=chatbots)
    done = {"resolved": 0, "false_positive": 0, "in_review": 0, "scored": 0, "corrected": 0, "manual": 0}
    for chatbot in chatbots:
        # The three riskiest stay new: the first thing a demo visitor should work on.
        queue = list(Conversation.objects.filter(chatbot=chatbot, is_flagged=True, review_status="new")
                     .order_by("-max_risk_score", "-last_activity_at")[3:11])
        worst = {c.pk: Turn.objects.filter(conversation=c).order_by("-risk_score", "judge_overall", "sequence").first()
                 for c in queue}
        for index, conversation in enumerate(queue):
            turn = worst[conversation.pk]
            reviewer = ana if index % 2 == 0 else ben
            if index < 3:
                judge = Evaluation.objects.filter(turn=turn, evaluator="judge", status="done").first()
                judged = {name: getattr(judge, name, None) for name in CRITERIA}
                scores = {name: float(max(0, min(10, round((5 if value is None else value) + rng.choice((-2, -1, 0, 0, 1))))))
                          for name, value in judged.items()}
                labels = [chatbot.review_labels[index % len(chatbot.review_labels)]] if chatbot.review_labels else []
                turn_human_score(turn=turn, actor=reviewer, scores=scores, hallucination=index == 0, labels=labels)
                done["scored"] += 1
            if index in (0, 1):
                conversations_review_status_set(
                    conversation_ids=[conversation.pk], actor=reviewer, status="resolved",
                    note="Checked against the help centre; answer fixed in the prompt." if index == 0
                    else "Handed over to a colleague; customer confirmed.",
                )
                done["resolved"] += 1
            elif index == 2:
                conversations_review_status_set(conversation_ids=[conversation.pk], actor=reviewer,
                                                status="false_positive", note="Quoted the customer's own words.")
                done["false_positive"] += 1
            elif index in (3, 4):
                conversations_assign(conversation_ids=[conversation.pk], actor=reviewer, assignee=reviewer)
                done["in_review"] += 1
                if index == 3 and turn.bot_response:
                    turn_answer_correct(turn=turn, actor=reviewer, corrected_answer=_corrected(turn))
                    done["corrected"] += 1
        # A reviewer flags by hand what nothing caught: the judge's lowest unflagged answer.
        unflagged = (Turn.objects.filter(chatbot=chatbot, is_flagged=False).exclude(bot_response="")
                     .order_by(F("judge_overall").asc(nulls_last=True), "-timestamp").first())
        if unflagged is not None and conversation_flag_manual(
            conversation_id=unflagged.conversation_id, actor=ben, turn=unflagged,
            note="No rule fired and nobody complained, but the answer dodges the question.",
        ):
            done["manual"] += 1
    return done


def _corrected(turn: Any) -> str:
    for topics in (SHOP, BANK, HR):
        for topic in topics:
            if topic.intent == turn.intent and topic.good:
                return topic.good[0].format(n=turn.external_id[-5:])
    return "I'm sorry, I don't know that. Let me connect you with a colleague who can help."


def demo_analysis_seed(*, seed: int = 7) -> dict[str, Any]:
    """Clusters, alerts and reviews on top of the demo traffic (steps 2–4 of apps/ingest/demo.py)."""
    chatbots = list(Chatbot.objects.filter(slug__in=[spec["slug"] for spec in CHATBOTS]).order_by("pk"))
    runs = demo_clusters_seed(chatbots=chatbots)
    alerts = demo_alerts_seed(chatbots=chatbots)
    reviews = demo_reviews_seed(chatbots=chatbots, rng=random.Random(seed))
    from apps.datasets.demo import demo_datasets_seed

    datasets = demo_datasets_seed(chatbot=chatbots[0], expected_answer_for=_corrected) if chatbots else {}
    return {"cluster_runs": runs, **alerts, "reviews": reviews, "datasets": datasets}
