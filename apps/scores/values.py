"""Score values: what a value may be, for a reserved name (the outcomes), a chatbot's score
definition, or any other name. Pure functions: used by the scores API, the outcomes endpoint and
turn ingest (`hallucinated`, `handoff`, an `end` event's `outcome`).

A value is numeric (a finite number), boolean (true/false, stored as 1/0 so averages are
rates) or categorical (a short label). A name with no definition takes the type of its value.
"""

import math
from dataclasses import dataclass
from typing import Any

from apps.core.text import control_characters_present

from .choices import ScoreType

MAX_CATEGORY_CHARS = 100


class ScoreValueInvalid(ValueError):
    pass


@dataclass(frozen=True)
class ScoreRule:
    data_type: str
    min_value: float | None = None
    max_value: float | None = None
    categories: tuple[str, ...] = ()
    integer: bool = False


# Reserved conversation-level scores with a fixed meaning; handed_off is also per turn.
OUTCOMES: dict[str, ScoreRule] = {
    "converted": ScoreRule(ScoreType.BOOLEAN),
    "resolved": ScoreRule(ScoreType.BOOLEAN),
    "handed_off": ScoreRule(ScoreType.BOOLEAN),
    "csat": ScoreRule(ScoreType.NUMERIC, 1, 5, integer=True),
    "nps": ScoreRule(ScoreType.NUMERIC, 0, 10, integer=True),
    "lead_quality": ScoreRule(ScoreType.CATEGORICAL),
}
# Bot-reported, from a turn's `hallucinated`.
HALLUCINATED = "hallucinated"
RESERVED: dict[str, ScoreRule] = {**OUTCOMES, HALLUCINATED: ScoreRule(ScoreType.BOOLEAN)}


@dataclass(frozen=True)
class ScoreValue:
    data_type: str
    number: float | None  # numeric, or 1/0 for boolean
    category: str = ""

    @property
    def display(self) -> str:
        if self.data_type == ScoreType.BOOLEAN:
            return "yes" if self.number else "no"
        if self.data_type == ScoreType.CATEGORICAL:
            return self.category
        return f"{self.number:g}" if self.number is not None else ""


def score_value_check(value: Any, rule: ScoreRule | None) -> ScoreValue:
    """`value` as stored, or ScoreValueInvalid saying why not (in the rule's terms)."""
    if isinstance(value, bool):
        parsed = ScoreValue(ScoreType.BOOLEAN, 1.0 if value else 0.0)
    elif isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 1e15:
            raise ScoreValueInvalid("Must be a finite number (at most 1e15).")
        parsed = ScoreValue(ScoreType.NUMERIC, float(value))
    elif isinstance(value, str):
        label = value.strip()
        if not label or len(label) > MAX_CATEGORY_CHARS or control_characters_present(label):
            raise ScoreValueInvalid(f"A category is 1 to {MAX_CATEGORY_CHARS} characters, no control characters.")
        parsed = ScoreValue(ScoreType.CATEGORICAL, None, label)
    else:
        raise ScoreValueInvalid("Must be a number, true/false or a category string.")
    if rule is None:
        return parsed
    if parsed.data_type != rule.data_type:
        raise ScoreValueInvalid(f"Must be {_type_words(rule.data_type)}.")
    if rule.data_type == ScoreType.NUMERIC:
        number = parsed.number
        if rule.integer and not float(number).is_integer():
            raise ScoreValueInvalid("Must be a whole number.")
        if (rule.min_value is not None and number < rule.min_value) or (rule.max_value is not None and number > rule.max_value):
            raise ScoreValueInvalid(f"Must be between {_bound(rule.min_value)} and {_bound(rule.max_value)}.")
    if rule.data_type == ScoreType.CATEGORICAL and rule.categories and parsed.category not in rule.categories:
        raise ScoreValueInvalid(f"Must be one of: {', '.join(rule.categories)}.")
    return parsed


def outcome_value_check(name: str, value: Any) -> Any:
    """An outcome's value checked against its reserved rule; the value itself is returned."""
    score_value_check(value, RESERVED[name])
    return value


def _type_words(data_type: str) -> str:
    return {"numeric": "a number", "boolean": "true or false", "categorical": "a category string"}[data_type]


def _bound(value: float | None) -> str:
    return "-∞" if value is None else f"{value:g}"


@dataclass(frozen=True)
class ScoreInput:
    """A score as the bot sent it to POST /api/v1/scores, checked for shape (not yet for its
    definition, which needs the database)."""

    conversation_id: str
    turn_id: str | None
    score_id: str | None
    name: str
    value: Any
    comment: str
    source: str
    timestamp: Any


SCORE_FIELDS = ("score_id", "conversation_id", "turn_id", "name", "value", "comment", "source", "timestamp")
MAX_COMMENT_CHARS = 4000
MAX_SOURCE_CHARS = 32


def parse_score(data: Any) -> ScoreInput:
    """One score; a ValidationFailed in DRF's error shape ({"field": ["message"]})."""
    from apps.ingest.validation import MAX_SCORE_NAME_CHARS, ValidationFailed, _Reader

    if not isinstance(data, dict):
        raise ValidationFailed({"non_field_errors": ["Expected a JSON object."]})
    r = _Reader(data)
    unknown = sorted(set(data) - set(SCORE_FIELDS))
    if unknown:
        r.fail("non_field_errors", f"Unknown field(s): {', '.join(unknown)[:200]}.")
    name = r.label("name", max_chars=MAX_SCORE_NAME_CHARS).strip()
    if not name and "name" not in r.errors:
        r.fail("name", "This field is required.")
    if "value" not in data or data["value"] is None:
        r.fail("value", "This field is required.")
    elif name in RESERVED:
        try:
            score_value_check(data["value"], RESERVED[name])
        except ScoreValueInvalid as exc:
            r.fail("value", str(exc))
    else:
        try:
            score_value_check(data["value"], None)
        except ScoreValueInvalid as exc:
            r.fail("value", str(exc))
    score = ScoreInput(
        conversation_id=r.identifier("conversation_id", required=True) or "",
        turn_id=r.identifier("turn_id"),
        score_id=r.identifier("score_id"),
        name=name,
        value=data.get("value"),
        comment=r.text("comment", max_chars=MAX_COMMENT_CHARS),
        source=r.label("source", max_chars=MAX_SOURCE_CHARS).strip() or "api",
        timestamp=r.timestamp("timestamp"),
    )
    if r.errors:
        raise ValidationFailed(r.errors)
    return score
