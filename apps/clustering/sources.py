"""The failure signals a clustering run draws its turns from: a registry from source to its test.

Each source is a database filter (so the selection reads only candidate turns) and a test on a
loaded turn (so every member records *all* the sources it matched, not just the first). Some
signals live in `flag_reasons`, a JSON list that SQLite cannot search with `contains`; their
filter is `is_flagged` and the test reads the list. A signal that lives in another table (the
conversation judge's low score) is an annotation the selection adds. A new signal is one more
`FailureSourceDef` in SOURCES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, OuterRef, Q

from apps.conversations.choices import FlagReason
from apps.conversations.models import Turn

from .choices import FailureSource

ALL_SOURCES = "all"


@dataclass(frozen=True)
class FailureSourceDef:
    source: str  # a FailureSource
    filter: Q  # a superset of the matching turns, answerable by the database
    matches: Callable[[Turn], bool]  # the exact test on a loaded turn
    fields: tuple[str, ...]  # the Turn fields `matches` reads
    # Annotations `filter` and `matches` read (name → a callable building the expression).
    annotations: tuple[tuple[str, Callable[[], Any]], ...] = ()


def _flagged_for(reason: str) -> Callable[[Turn], bool]:
    return lambda turn: bool(turn.is_flagged) and reason in (turn.flag_reasons or [])


def _low_conversation_score() -> Exists:
    """The turn where a conversation judged below its chatbot's threshold went wrong (the
    conversation judge names it by sequence)."""
    from apps.evaluations.choices import EvaluationStatus
    from apps.evaluations.models import ConversationEvaluation

    return Exists(ConversationEvaluation.objects.filter(
        conversation_id=OuterRef("conversation_id"), failed_turn=OuterRef("sequence"),
        status=EvaluationStatus.DONE, overall__lt=F("chatbot__conversation_judge_flag_below"),
    ))


SOURCES: dict[str, FailureSourceDef] = {
    definition.source: definition
    for definition in (
        FailureSourceDef(FailureSource.THUMBS_DOWN, Q(thumbs_down__gt=0), lambda t: t.thumbs_down > 0,
                         ("thumbs_down",)),
        FailureSourceDef(FailureSource.JUDGE_FLAGGED, Q(is_flagged=True), _flagged_for(FlagReason.JUDGE),
                         ("is_flagged", "flag_reasons")),
        FailureSourceDef(FailureSource.HALLUCINATED, Q(judge_hallucination=True),
                         lambda t: t.judge_hallucination is True, ("judge_hallucination",)),
        FailureSourceDef(FailureSource.FALLBACK, Q(fallback_used=True), lambda t: bool(t.fallback_used),
                         ("fallback_used",)),
        FailureSourceDef(FailureSource.ERROR, Q(has_error=True), lambda t: bool(t.has_error), ("has_error",)),
        FailureSourceDef(FailureSource.MANUAL_FLAG, Q(is_flagged=True), _flagged_for(FlagReason.MANUAL),
                         ("is_flagged", "flag_reasons")),
        FailureSourceDef(FailureSource.LOW_CONVERSATION_SCORE, Q(low_conversation_score=True),
                         lambda t: bool(getattr(t, "low_conversation_score", False)), (),
                         annotations=(("low_conversation_score", _low_conversation_score),)),
    )
}


class UnknownSourceError(ValueError):
    pass


def sources_normalise(sources: Iterable[str] | None) -> list[str]:
    """The sources asked for, in the registry's order; None, empty or "all": every source."""
    asked = [str(s).strip() for s in (sources or []) if str(s).strip()]
    if not asked or ALL_SOURCES in asked:
        return list(SOURCES)
    unknown = sorted(set(asked) - set(SOURCES))
    if unknown:
        raise UnknownSourceError(
            f"Unknown failure source {', '.join(map(repr, unknown))}; choose from {', '.join(SOURCES)} or all."
        )
    return [source for source in SOURCES if source in asked]


def sources_filter(sources: list[str]) -> Q:
    combined = Q()
    for source in sources:
        combined |= SOURCES[source].filter
    return combined


def sources_fields(sources: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(field for source in sources for field in SOURCES[source].fields))


def sources_annotations(sources: list[str]) -> dict[str, Any]:
    return {name: build() for source in sources for name, build in SOURCES[source].annotations}


def turn_reasons(turn: Turn, sources: list[str]) -> list[str]:
    """The sources this turn matches, in the registry's order (empty: it is not a failure)."""
    return [source for source in sources if SOURCES[source].matches(turn)]
