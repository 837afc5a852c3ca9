"""Exports of a run's clusters: OpenAI chat fine-tuning JSONL, audit-logged."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from apps.audit.services import audit_event_record
from apps.conversations.models import Turn
from apps.privacy.policy import training_allowed_turns

from .models import Cluster, ClusterMember


def cluster_finetune_jsonl(
    *, clusters: list[Cluster], actor: Any, system_prompt: str | None = None, reviewed_only: bool = True
) -> tuple[str, int, int]:
    """OpenAI chat fine-tuning lines (system, user, assistant) for the clusters' turns.

    The assistant message is the reviewer's corrected answer when there is one, else the bot's
    answer. By default (`reviewed_only`) only reviewed turns are written: those with a corrected
    answer or whose conversation a reviewer closed (resolved or false positive); the bot's own
    unreviewed answers are not training targets. Turns without an answer are left out, and so
    are turns whose end user did not consent to training (no_training, no_content:
    apps.privacy.policy.training_allowed_turns); they count as skipped.
    Each exported cluster is audit-logged with counts only.
    Returns (jsonl, lines written, turns skipped).
    """
    prompt = settings.FINETUNE_EXPORT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    lines: list[str] = []
    skipped = 0
    for cluster in clusters:
        written = 0
        members = ClusterMember.objects.filter(cluster=cluster)
        allowed = members.filter(turn__in=training_allowed_turns(Turn.objects.filter(cluster_memberships__cluster=cluster)))
        skipped += members.count() - allowed.count()
        rows = (
            allowed
            .order_by("distance", "id")
            .values_list("turn__user_message", "turn__bot_response", "turn__corrected_answer",
                         "turn__conversation__review_status")
        )
        for user_message, bot_response, corrected_answer, review_status in rows.iterator(chunk_size=2000):
            reviewed = bool(corrected_answer.strip()) or review_status in ("resolved", "false_positive")
            bot_response = corrected_answer if corrected_answer.strip() else bot_response
            if not bot_response.strip() or not user_message.strip() or (reviewed_only and not reviewed):
                skipped += 1
                continue
            messages = ([{"role": "system", "content": prompt}] if prompt else []) + [
                {"role": "user", "content": user_message},
                {"role": "assistant", "content": bot_response},
            ]
            lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
            written += 1
        audit_event_record(
            action="cluster.export_finetune_jsonl", actor=actor, target=cluster, chatbot=cluster.run.chatbot,
            data={"run": cluster.run_id, "cluster": cluster.pk, "lines": written},
        )
    return ("\n".join(lines) + "\n") if lines else "", len(lines), skipped
