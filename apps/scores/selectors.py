"""Reads over scores: the review queue's score condition ("csat ≤ 2").

A condition is `<name><operator><value>`: `csat<=2`, `converted=false`, `lead_quality=hot`,
`faithfulness<0.5`. Numbers compare with < <= = != >= >, true/false with = and !=, a category
with = and !=. A conversation matches when one of its scores (conversation-level or on one of
its turns) of that name satisfies it: EXISTS, so no duplicate rows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from .choices import ScoreType
from .models import Score

OPERATORS = {"<=": "lte", ">=": "gte", "!=": "ne", "<": "lt", ">": "gt", "=": "eq"}
_CONDITION = re.compile(r"^\s*([A-Za-z0-9_.\-]{1,100})\s*(<=|>=|!=|<|>|=)\s*(\S.{0,99}?)\s*$")


class ScoreConditionInvalid(ValueError):
    pass


@dataclass(frozen=True)
class ScoreCondition:
    name: str
    operator: str  # a value of OPERATORS
    number: float | None = None  # numbers, and booleans as 1/0
    category: str = ""

    def q(self) -> Q:
        """The scores satisfying the condition."""
        match = Q(name=self.name)
        if self.number is None:
            same = Q(data_type=ScoreType.CATEGORICAL, category=self.category)
            return match & (same if self.operator == "eq" else Q(data_type=ScoreType.CATEGORICAL) & ~same)
        if self.operator == "ne":
            return match & Q(value__isnull=False) & ~Q(value=self.number)
        lookup = "exact" if self.operator == "eq" else self.operator
        return match & Q(**{f"value__{lookup}": self.number})


def score_condition_parse(text: str) -> ScoreCondition:
    """`csat<=2` → ScoreCondition; ScoreConditionInvalid with a sentence when it is not one."""
    found = _CONDITION.match(text or "")
    if found is None:
        raise ScoreConditionInvalid("Write a score condition as name, operator, value: csat<=2, converted=false, "
                                    "lead_quality=hot (operators < <= = != >= >).")
    name, symbol, raw = found.groups()
    operator = OPERATORS[symbol]
    lowered = raw.lower()
    if lowered in ("true", "false", "yes", "no"):
        if operator not in ("eq", "ne"):
            raise ScoreConditionInvalid("true/false compares with = or != only.")
        return ScoreCondition(name, operator, number=1.0 if lowered in ("true", "yes") else 0.0)
    try:
        number = float(raw)
    except ValueError:
        if operator not in ("eq", "ne"):
            raise ScoreConditionInvalid(f"{raw!r} is not a number: a category compares with = or != only.") from None
        return ScoreCondition(name, operator, category=raw)
    if not math.isfinite(number):
        raise ScoreConditionInvalid("The value must be a finite number.")
    return ScoreCondition(name, operator, number=number)


def conversations_with_score(queryset: QuerySet, condition: ScoreCondition) -> QuerySet:
    """The conversations of `queryset` with a score satisfying `condition`."""
    return queryset.filter(Exists(Score.objects.filter(condition.q(), conversation_id=OuterRef("pk"))))
