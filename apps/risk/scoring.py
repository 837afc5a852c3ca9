"""Real-time risk scoring with DetectionRules.

Rules are compiled once with RE2 (apps.core.regex: time linear in the text, whatever the rule) —
keywords become one case-insensitive whole-word alternation, the regex is compiled as is — and
cached per process; a stored regex RE2 cannot compile (saved before RE2, or not through the
admin) is logged and skipped, never raised into ingest; saving or deleting a rule bumps a version in the shared
cache, so every process recompiles within a second of an admin edit.

Score = min(100, sum of matched rules' points); level low/medium/high/critical at 0/25/50/75.

Speed (issue 22): most messages match no rule, so `rules_for_chatbot` returns the rules with one
prefilter per side — every user-side (or bot-side) pattern as one RE2 alternation, compiled once
per rule version and chatbot. A text the prefilter does not match matches none of them (RE2 still
falls back to its NFA where the DFA runs out of memory, so "no match" is exact, unlike re2.Set's
Match, which answers "none" when its DFA gives up); only a text it matches runs the per-rule
searches, which decide which rules matched, exactly as before. A prefilter RE2 cannot compile
(the program past RE2's memory) is None: per-rule searches. Keywords enter the prefilter without
their word edges (a superset), so the prefilter's program stays small enough for RE2's DFA.
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
    keywords: tuple[str, ...] = ()  # as written: the prefilter matches them without word edges

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
        keywords=tuple(keywords),
    )


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _prefilter(rules: list[CompiledRule], sides: tuple[str, ...]) -> Pattern | None:
    """One alternation of every pattern of the rules applying to `sides` (see the module docstring)."""
    # Keywords without their word edges: a superset of what the keyword pattern matches, and a
    # program ~50× smaller (the edges are Unicode classes, case-folded), so RE2's DFA stays fast.
    sources = [regex_escape(keyword) for rule in rules if rule.applies_to in sides for keyword in rule.keywords]
    sources += [rule.regex.pattern for rule in rules if rule.applies_to in sides and rule.regex is not None]
    if not sources:
        return _MATCHES_NOTHING
    try:
        # (?:…) scopes each pattern's alternatives and inline flags ((?s), (?-i)) to itself.
        return regex_compile("|".join(f"(?:{source})" for source in sources), ignore_case=True)
    except RegexError:
        return None


_MATCHES_NOTHING = regex_compile(r"[^\x00-\x{10FFFF}]")  # an empty class: no rule on this side


class Rules(list):
    """A chatbot's compiled rules plus the prefilters of the user and bot sides (None: no prefilter)."""

    def __init__(self, rules: list[CompiledRule]) -> None:
        super().__init__(rules)
        self.user_prefilter = _prefilter(rules, (AppliesTo.USER, AppliesTo.BOTH))
        self.bot_prefilter = _prefilter(rules, (AppliesTo.BOT, AppliesTo.BOTH))


class _RuleCache:
    def __init__(self) -> None:
        self.rules: list[CompiledRule] | None = None
        self.per_chatbot: dict[int, Rules] = {}
        self.version: int | None = None
        self.checked_at = 0.0

    def get(self) -> list[CompiledRule]:
        now = time.monotonic()
        if self.rules is None or now - self.checked_at > _VERSION_CHECK_SECONDS:
            version = cache.get(_VERSION_KEY, 0)
            if self.rules is None or version != self.version:
                self.rules = [compile_rule(r) for r in DetectionRule.objects.filter(is_active=True).order_by("id")]
                self.per_chatbot = {}
                self.version = version
            self.checked_at = now
        return self.rules

    def for_chatbot(self, chatbot_id: int) -> Rules:
        rules = self.get()
        found = self.per_chatbot.get(chatbot_id)
        if found is None:
            found = Rules([r for r in rules if r.chatbot_id is None or r.chatbot_id == chatbot_id])
            if len(self.per_chatbot) < 10_000:  # bounded: one entry per chatbot seen since the last edit
                self.per_chatbot[chatbot_id] = found
        return found

    def invalidate(self) -> None:
        self.rules = None
        self.per_chatbot = {}


_rules = _RuleCache()


def rules_for_chatbot(chatbot_id: int) -> Rules:
    """The active rules for `chatbot_id` (global ones included), with their prefilters; do not mutate."""
    return _rules.for_chatbot(chatbot_id)


def risk_score(*, chatbot_id: int, user_message: str, bot_response: str, model: str = "",
               rules: list[CompiledRule] | None = None) -> RiskVerdict:
    matched: list[dict] = []
    total = 0
    if rules is None:
        rules = rules_for_chatbot(chatbot_id)
    user_text, bot_text = text_bytes(user_message or ""), text_bytes(bot_response or "")
    # One prefilter search per text; a side it rules out skips every rule's search there.
    user_possible = _possible(getattr(rules, "user_prefilter", None), user_text)
    bot_possible = _possible(getattr(rules, "bot_prefilter", None), bot_text)
    if not user_possible and not bot_possible:
        return RiskVerdict(score=0, level=RiskLevel.for_score(0), reasons=matched)
    for rule in rules:
        if not rule.applies_to_model(model):
            continue
        where = None
        if user_possible and rule.applies_to in (AppliesTo.USER, AppliesTo.BOTH) and rule.match(user_text):
            where = "user"
        elif bot_possible and rule.applies_to in (AppliesTo.BOT, AppliesTo.BOTH) and rule.match(bot_text):
            where = "bot"
        if where is not None:
            total += rule.points
            # The rule and where it matched; not the matched text (it may be a secret or PII).
            matched.append({"rule_id": rule.id, "rule": rule.name, "points": rule.points,
                            "severity": rule.severity, "field": where})
    score = min(100, total)
    return RiskVerdict(score=score, level=RiskLevel.for_score(score), reasons=matched)


def _possible(prefilter: Pattern | None, text: bytes) -> bool:
    """Whether some rule may match `text`: False only when the prefilter proves none does."""
    if not text:
        return False  # CompiledRule.match never matches an empty message
    return prefilter is None or prefilter.search(text) is not None


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
__all__ = ["RiskVerdict", "Rules", "risk_score", "rules_for_chatbot", "rules_invalidate"]
