"""Real-time risk scoring with DetectionRules.

Rules are compiled once with RE2 (apps.core.regex: time linear in the text, whatever the rule) —
keywords become one case-insensitive whole-word alternation, the regex is compiled as is — and
cached per process; a stored regex RE2 cannot compile (saved before RE2, or not through the
admin) is logged and skipped, never raised into ingest; saving or deleting a rule bumps a version in the shared
cache, so every process recompiles within a second of an admin edit.

Score = min(100, sum of matched rules' points); level low/medium/high/critical at 0/25/50/75.
"""

import fnmatch
import logging
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.conversations.choices import RiskLevel
from apps.core.regex import Pattern, RegexError, regex_compile, regex_escape, text_bytes

from .choices import AppliesTo
from .models import DetectionRule

_VERSION_KEY = "risk:rules:version"
_VERSION_CHECK_SECONDS = 1.0
# Python's \w (Unicode): RE2's \b is ASCII only, so keyword edges are spelled with this class.
_NOT_WORD = r"[^\pL\pN_]"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledRule:
    id: int
    name: str
    chatbot_id: int | None
    points: int
    severity: str
    applies_to: str
    model_patterns: tuple[str, ...]
    keyword_pattern: Pattern | None
    regex: Pattern | None

    def applies_to_model(self, model: str) -> bool:
        if not self.model_patterns:
            return True
        name = (model or "").lower()
        return any(fnmatch.fnmatchcase(name, p) for p in self.model_patterns)

    def match(self, text: bytes) -> bool:
        """Whether the rule matches `text` (text_bytes() of a message: encoded once per turn)."""
        if not text:
            return False
        return any(pattern is not None and pattern.search(text) is not None
                   for pattern in (self.keyword_pattern, self.regex))


@dataclass(frozen=True)
class RiskVerdict:
    score: int
    level: str
    reasons: list[dict]


def compile_rule(rule: DetectionRule) -> CompiledRule:
    keyword_pattern = None
    keywords = [k.strip() for k in rule.keywords or [] if isinstance(k, str) and k.strip()]
    if keywords:
        # A word boundary only where the keyword edge is a word char (Python's \w, Unicode): the
        # neighbouring character is matched (not a word char, or the text's edge) instead of \b.
        parts = []
        for keyword in sorted(keywords, key=len, reverse=True):
            left = rf"(?:\A|{_NOT_WORD})" if _is_word_char(keyword[0]) else ""
            right = rf"(?:\z|{_NOT_WORD})" if _is_word_char(keyword[-1]) else ""
            parts.append(f"{left}{regex_escape(keyword)}{right}")
        keyword_pattern = regex_compile("|".join(parts), ignore_case=True)
    regex = None
    if rule.regex:
        try:
            regex = regex_compile(rule.regex, ignore_case=True)
        except RegexError as exc:
            # Refused in the admin (DetectionRule.clean); a row saved another way must not break ingest.
            logger.warning("risk rule %s: regex skipped, RE2 cannot compile it: %s", rule.pk, exc)
    return CompiledRule(
        id=rule.pk,
        name=rule.name,
        chatbot_id=rule.chatbot_id,
        points=rule.points,
        severity=rule.severity,
        applies_to=rule.applies_to,
        model_patterns=tuple(p.lower() for p in rule.model_patterns or ()),  # lowered once, not per turn
        keyword_pattern=keyword_pattern,
        regex=regex,
    )


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class _RuleCache:
    def __init__(self) -> None:
        self.rules: list[CompiledRule] | None = None
        self.version: int | None = None
        self.checked_at = 0.0

    def get(self) -> list[CompiledRule]:
        now = time.monotonic()
        if self.rules is None or now - self.checked_at > _VERSION_CHECK_SECONDS:
            version = cache.get(_VERSION_KEY, 0)
            if self.rules is None or version != self.version:
                self.rules = [compile_rule(r) for r in DetectionRule.objects.filter(is_active=True).order_by("id")]
                self.version = version
            self.checked_at = now
        return self.rules

    def invalidate(self) -> None:
        self.rules = None


_rules = _RuleCache()


def rules_for_chatbot(chatbot_id: int) -> list[CompiledRule]:
    return [r for r in _rules.get() if r.chatbot_id is None or r.chatbot_id == chatbot_id]


def risk_score(*, chatbot_id: int, user_message: str, bot_response: str, model: str = "",
               rules: list[CompiledRule] | None = None) -> RiskVerdict:
    matched: list[dict] = []
    total = 0
    user_text, bot_text = text_bytes(user_message or ""), text_bytes(bot_response or "")
    for rule in rules if rules is not None else rules_for_chatbot(chatbot_id):
        if not rule.applies_to_model(model):
            continue
        where = None
        if rule.applies_to in (AppliesTo.USER, AppliesTo.BOTH) and rule.match(user_text):
            where = "user"
        elif rule.applies_to in (AppliesTo.BOT, AppliesTo.BOTH) and rule.match(bot_text):
            where = "bot"
        if where is not None:
            total += rule.points
            # The rule and where it matched; not the matched text (it may be a secret or PII).
            matched.append({"rule_id": rule.id, "rule": rule.name, "points": rule.points,
                            "severity": rule.severity, "field": where})
    score = min(100, total)
    return RiskVerdict(score=score, level=RiskLevel.for_score(score), reasons=matched)


def rules_invalidate() -> None:
    try:
        cache.incr(_VERSION_KEY)
    except ValueError:
        cache.set(_VERSION_KEY, 1, None)
    _rules.invalidate()


@receiver([post_save, post_delete], sender=DetectionRule)
def _rule_changed(**_kwargs: object) -> None:
    rules_invalidate()


# Admin-side validation (invalid regex) lives in DetectionRule.clean(); nothing to do here.
__all__ = ["RiskVerdict", "risk_score", "rules_for_chatbot", "rules_invalidate"]
