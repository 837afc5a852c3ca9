"""Datasets and their items: the one gate for production turns, item versions, import/export.

Production data enters a dataset only through `dataset_eligible_turns` (privacy rules live
there and nowhere else). Items are versioned: `dataset_item_update` writes version n+1 and never
touches older versions, which past results point at.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.conversations.models import Turn
from apps.privacy.policy import training_allowed_turns

from .models import Dataset, DatasetItem, DatasetItemVersion

MAX_IMPORT_ITEMS = 10_000
MAX_TEXT_CHARS = 20_000
MAX_CONTEXT_TURNS = 20
CONTEXT_TURNS_FROM_PRODUCTION = 3
ERASURE_ACTION = "privacy.end_user_erased"


class ItemInvalid(ValueError):
    """An item (or an upload line) that cannot be stored; the message says what to fix."""


@dataclass
class TurnsAdded:
    added: int
    already_there: int
    not_eligible: int
    other_chatbot: int


# --- the gate ------------------------------------------------------------------------------------


def dataset_eligible_turns(queryset: QuerySet[Turn]) -> QuerySet[Turn]:
    """The turns of `queryset` that may enter a dataset: the single gate for production data.

    1. Erasure deletes an end user's turns (apps.privacy); an end user who asked for erasure also
       never enters a dataset with turns sent later: the erasure audit events name them by hash
       prefix (the only trace erasure keeps), and turns of those hashes are left out.
    2. Consent: only conversations with `full` consent (apps.privacy.policy.training_allowed_turns);
       `no_training` keeps texts for review but out of datasets, `no_content` has no text.
    """
    queryset = training_allowed_turns(queryset)
    prefixes = {
        (chatbot_id, (data or {}).get("end_user_hash_prefix") or "")
        for chatbot_id, data in AuditEvent.objects.filter(action=ERASURE_ACTION).values_list(
            "chatbot_id", "data"
        )
    }
    erased = Q()
    for chatbot_id, prefix in prefixes:
        if len(prefix) >= 12 and chatbot_id:
            erased |= Q(chatbot_id=chatbot_id) & (
                Q(end_user_hash__startswith=prefix)
                | Q(end_user_hash="", conversation__end_user_hash__startswith=prefix)
            )
    return queryset.exclude(erased) if erased else queryset


# --- item content --------------------------------------------------------------------------------


def _text(value: Any, name: str, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ItemInvalid(f"{name} must be a string")
    value = value.replace("\x00", "").strip()
    if required and not value:
        raise ItemInvalid(f"{name} is required")
    if len(value) > MAX_TEXT_CHARS:
        raise ItemInvalid(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _string_list(value: Any, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):  # CSV cells: "a | b | c"
        value = [part for part in value.split("|")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ItemInvalid(f"{name} must be a list of strings")
    cleaned = [v.replace("\x00", "").strip() for v in value]
    if len(cleaned) > 50 or any(len(v) > 500 for v in cleaned):
        raise ItemInvalid(f"{name}: at most 50 entries of 500 characters")
    return [v for v in cleaned if v]


def item_content_clean(raw: Any) -> dict[str, Any]:
    """Validate one item as the API and uploads send it; returns the model's fields."""
    if not isinstance(raw, dict):
        raise ItemInvalid("an item must be a JSON object")
    known = {"input", "context", "expected_answer", "expected_properties", "tags", "metadata", "id"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ItemInvalid(f"unknown field(s): {', '.join(unknown)}")
    context = raw.get("context") or []
    if isinstance(context, str):
        try:
            context = json.loads(context)
        except ValueError:
            raise ItemInvalid('context must be a list of {"user", "bot"} objects') from None
    if not isinstance(context, list) or len(context) > MAX_CONTEXT_TURNS:
        raise ItemInvalid(f"context must be a list of at most {MAX_CONTEXT_TURNS} earlier turns")
    turns = []
    for earlier in context:
        if not isinstance(earlier, dict) or set(earlier) - {"user", "bot"}:
            raise ItemInvalid('context must be a list of {"user", "bot"} objects')
        turns.append(
            {
                "user": _text(earlier.get("user"), "context.user"),
                "bot": _text(earlier.get("bot"), "context.bot"),
            }
        )
    metadata = raw.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise ItemInvalid("metadata must be a JSON object") from None
    if not isinstance(metadata, dict) or len(json.dumps(metadata)) > MAX_TEXT_CHARS:
        raise ItemInvalid("metadata must be a JSON object (at most 20,000 characters)")
    external_id = raw.get("id", "")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    return {
        "external_id": _text(external_id, "id")[:200],
        "input": _text(raw.get("input"), "input", required=True),
        "context": turns,
        "expected_answer": _text(raw.get("expected_answer"), "expected_answer"),
        "expected_properties": _string_list(raw.get("expected_properties"), "expected_properties"),
        "tags": _string_list(raw.get("tags"), "tags"),
        "metadata": metadata,
    }


def _version_of(item: DatasetItem, *, actor: Any) -> DatasetItemVersion:
    return DatasetItemVersion(
        item=item,
        number=item.version,
        created_by=actor if getattr(actor, "pk", None) else None,
        **{name: getattr(item, name) for name in DatasetItem.CONTENT_FIELDS},
    )


def dataset_items_create(
    *,
    dataset: Dataset,
    items: list[dict[str, Any]],
    actor: Any = None,
    source_turns: list[Turn | None] | None = None,
) -> list[DatasetItem]:
    """Store cleaned items (version 1 each) in one transaction."""
    now = timezone.now()
    rows = [
        DatasetItem(
            dataset=dataset,
            created_at=now,
            updated_at=now,
            source_turn=(source_turns[i] if source_turns else None),
            **content,
        )
        for i, content in enumerate(items)
    ]
    with transaction.atomic():
        created = DatasetItem.objects.bulk_create(rows)
        DatasetItemVersion.objects.bulk_create([_version_of(item, actor=actor) for item in created])
    return created


def dataset_item_update(
    *, item: DatasetItem, changes: dict[str, Any], actor: Any = None
) -> DatasetItem:
    """Apply `changes` (content fields) as a new version; no change, no new version."""
    changes = {k: v for k, v in changes.items() if k in DatasetItem.CONTENT_FIELDS}
    if all(getattr(item, k) == v for k, v in changes.items()):
        return item
    with transaction.atomic():
        locked = DatasetItem.objects.select_for_update().get(pk=item.pk)
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.version += 1
        locked.updated_at = timezone.now()
        locked.save()
        _version_of(locked, actor=actor).save()
    return locked


def dataset_item_version_ensure(*, item: DatasetItem, actor: Any = None) -> None:
    """After an edit made through a form (the admin saves the item itself): record its version."""
    latest = item.versions.order_by("-number").first()
    if latest is None or any(
        getattr(latest, n) != getattr(item, n) for n in DatasetItem.CONTENT_FIELDS
    ):
        item.version = (latest.number + 1) if latest else 1
        DatasetItem.objects.filter(pk=item.pk).update(
            version=item.version, updated_at=timezone.now()
        )
        _version_of(item, actor=actor).save()


# --- from production -----------------------------------------------------------------------------


def _context_of(turn: Turn, earlier: list[Turn]) -> list[dict[str, str]]:
    return [{"user": t.user_message, "bot": t.bot_response} for t in earlier][
        -CONTEXT_TURNS_FROM_PRODUCTION:
    ]


def dataset_items_add_from_turns(
    *, dataset: Dataset, turns: QuerySet[Turn], actor: Any = None
) -> TurnsAdded:
    """Add production turns as items: the user message as input, earlier turns as context, the
    reviewer's corrected answer (when there is one) as the expected answer.

    Every turn goes through `dataset_eligible_turns`; a chatbot's dataset takes only its own
    chatbot's turns; a turn already in the dataset is skipped.
    """
    asked = list(turns.values_list("pk", flat=True))
    eligible = list(
        dataset_eligible_turns(Turn.objects.filter(pk__in=asked))
        .select_related("conversation")
        .order_by("pk")
    )
    other_chatbot = [
        t for t in eligible if dataset.chatbot_id and t.chatbot_id != dataset.chatbot_id
    ]
    eligible = [t for t in eligible if t not in other_chatbot]
    present = set(
        DatasetItem.objects.filter(dataset=dataset, source_turn__in=eligible).values_list(
            "source_turn_id", flat=True
        )
    )
    new = [t for t in eligible if t.pk not in present]
    # Context turns pass the same gate (another end user's turn in a shared thread may not).
    conversation_ids = {t.conversation_id for t in new}
    earlier_by_conversation: dict[int, list[Turn]] = {}
    for t in dataset_eligible_turns(
        Turn.objects.filter(conversation_id__in=conversation_ids)
    ).order_by("sequence", "id"):
        earlier_by_conversation.setdefault(t.conversation_id, []).append(t)
    items, sources = [], []
    for turn in new:
        earlier = [
            t
            for t in earlier_by_conversation.get(turn.conversation_id, [])
            if (t.sequence, t.pk) < (turn.sequence, turn.pk)
        ]
        items.append(
            {
                "external_id": turn.external_id or "",
                "input": turn.user_message[:MAX_TEXT_CHARS],
                "context": _context_of(turn, earlier),
                "expected_answer": (turn.corrected_answer or "")[:MAX_TEXT_CHARS],
                "expected_properties": [],
                "tags": ["production"] + (["corrected"] if turn.corrected_answer else []),
                "metadata": {
                    "conversation": turn.conversation.external_id,
                    "original_answer": turn.bot_response[:MAX_TEXT_CHARS],
                },
            }
        )
        sources.append(turn)
    try:
        dataset_items_create(dataset=dataset, items=items, actor=actor, source_turns=sources)
    except IntegrityError:
        # Added by someone else meanwhile: one at a time, skipping those already there.
        for content, turn in zip(items, sources, strict=True):
            try:
                with transaction.atomic():
                    dataset_items_create(
                        dataset=dataset, items=[content], actor=actor, source_turns=[turn]
                    )
            except IntegrityError:
                present.add(turn.pk)
    return TurnsAdded(
        added=len(new) - len([t for t in new if t.pk in present]),
        already_there=len(present),
        not_eligible=len(asked) - len(eligible) - len(other_chatbot),
        other_chatbot=len(other_chatbot),
    )


# --- upload and export ---------------------------------------------------------------------------


def items_parse(*, content: bytes, filename: str = "") -> list[dict[str, Any]]:
    """Parse a JSONL or CSV upload into cleaned items; any bad line rejects the whole file."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ItemInvalid("the file is not UTF-8 text") from None
    rows: list[tuple[int, Any]] = []
    if filename.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "input" not in reader.fieldnames:
            raise ItemInvalid("a CSV upload needs a header row with at least an input column")
        rows = [
            (number + 2, {k: v for k, v in row.items() if k and v not in (None, "")})
            for number, row in enumerate(reader)
        ]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except ValueError:
                raise ItemInvalid(f"line {number}: not JSON") from None
    if not rows:
        raise ItemInvalid("the file holds no items")
    if len(rows) > MAX_IMPORT_ITEMS:
        raise ItemInvalid(f"at most {MAX_IMPORT_ITEMS} items per upload")
    cleaned = []
    for number, raw in rows:
        try:
            cleaned.append(item_content_clean(raw))
        except ItemInvalid as exc:
            raise ItemInvalid(f"line {number}: {exc}") from None
    return cleaned


def dataset_items_import(
    *, dataset: Dataset, content: bytes, filename: str = "", actor: Any = None
) -> int:
    items = items_parse(content=content, filename=filename)
    return len(dataset_items_create(dataset=dataset, items=items, actor=actor))


def dataset_export_jsonl(*, dataset: Dataset) -> Iterator[str]:
    """One JSON line per item (current version), in the upload's format plus id and version."""
    for item in dataset.items.order_by("pk").iterator(chunk_size=500):
        yield (
            json.dumps(
                {
                    "id": item.external_id or str(item.pk),
                    "item": item.pk,
                    "version": item.version,
                    **item.content(),
                    "source_turn": item.source_turn_id,
                },
                ensure_ascii=False,
            )
            + "\n"
        )


def dataset_items_of(*, dataset: Dataset, ids: Iterable[int]) -> QuerySet[DatasetItem]:
    return DatasetItem.objects.filter(dataset=dataset, pk__in=list(ids))
