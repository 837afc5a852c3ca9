"""The offline evaluator: deterministic scores from explainable signals, no model call.

It cannot check facts, so it never claims a hallucination (None = "cannot tell") and its
accuracy only reflects visible failure signs. Every score is labelled "heuristic" wherever it
is shown; the signals behind it are stored on the Evaluation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..choices import CRITERIA, Evaluator
from ..rubric import Judgment
from .base import JudgeBackend, JudgeOutcome, register

if TYPE_CHECKING:
    from apps.conversations.models import Turn

HEURISTIC_VERSION = "heuristic-v1"

REFUSAL_PHRASES = (
    "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i'm unable to",
    "i am unable to", "i'm not able to", "i am not able to", "i'm sorry, but", "i am sorry, but",
    "as an ai", "i don't have access", "i do not have access", "i can't provide", "i cannot provide",
)
FALLBACK_PHRASES = (
    "i didn't understand", "i did not understand", "i don't understand", "could you rephrase",
    "please rephrase", "try again later", "something went wrong", "an error occurred",
    "i'm not sure what you mean", "transfer you to an agent", "connect you with an agent",
)
HEDGE_PHRASES = ("i think", "probably", "i'm not sure", "i am not sure", "might be", "i believe", "maybe")
_STOPWORDS_TEXT = """a an and are as at be but by can could do does for from have how i if in is it its me my
    of on or our please so that the their then there this to was we what when where which who why
    will with would you your hi hello thanks thank"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _content_words(text: str) -> set[str]:
    # A crude stem (drop a plural "s") so "orders" in the question matches "order" in the answer.
    return {w[:-1] if len(w) > 4 and w.endswith("s") else w for w in _words(text) if w not in STOPWORDS and len(w) > 2}


def _first(phrases: tuple[str, ...], text: str) -> str | None:
    return next((p for p in phrases if p in text), None)


@register
class HeuristicJudge(JudgeBackend):
    kind = "heuristic"
    evaluator = Evaluator.HEURISTIC

    @property
    def version(self) -> str:
        return HEURISTIC_VERSION

    @property
    def uses_context(self) -> bool:
        return False

    def judge(self, *, turn: Turn, context: list[Turn]) -> JudgeOutcome:
        """Start every criterion at a neutral-good 8 and subtract for each signal found."""
        answer = (turn.bot_response or "").strip()
        lowered = answer.lower()
        words = _words(answer)
        signals: dict[str, Any] = {"answer_words": len(words)}
        reasons: list[str] = []
        scores = dict.fromkeys(CRITERIA, 8.0)

        def penalise(amounts: dict[str, float]) -> None:
            for name, amount in amounts.items():
                scores[name] -= amount

        if not answer:
            signals["empty_answer"] = True
            reasons.append("The bot gave no answer.")
            penalise({"accuracy": 8, "relevance": 8, "clarity": 8, "helpfulness": 8})
        else:
            if len(words) < 4:
                signals["very_short_answer"] = True
                reasons.append(f"The answer is very short ({len(words)} words).")
                penalise({"helpfulness": 3, "clarity": 1})
            question_words = _content_words(turn.user_message)
            if question_words:
                overlap = len(question_words & _content_words(answer)) / len(question_words)
                signals["question_overlap"] = round(overlap, 2)
                if overlap == 0:
                    reasons.append("The answer shares no key words with the question.")
                    penalise({"relevance": 3})
                elif overlap < 0.2:
                    reasons.append("The answer shares few key words with the question.")
                    penalise({"relevance": 1.5})
                elif overlap >= 0.5:
                    scores["relevance"] += 1
            refusal = _first(REFUSAL_PHRASES, lowered)
            if refusal:
                signals["refusal_phrase"] = refusal
                reasons.append(f'The answer refuses or deflects ("{refusal}").')
                penalise({"helpfulness": 4, "relevance": 2})
            fallback_phrase = _first(FALLBACK_PHRASES, lowered)
            if fallback_phrase:
                signals["fallback_phrase"] = fallback_phrase
                reasons.append(f'The answer reads like a fallback ("{fallback_phrase}").')
                penalise({"helpfulness": 3, "relevance": 2})
            hedge = _first(HEDGE_PHRASES, lowered)
            if hedge:
                signals["hedging"] = hedge
                reasons.append(f'The answer hedges ("{hedge}").')
                penalise({"accuracy": 1.5})
            if len(words) > 400:
                signals["very_long_answer"] = True
                reasons.append(f"The answer is very long ({len(words)} words).")
                penalise({"clarity": 2})
            letters = [c for c in answer if c.isalpha()]
            if len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
                signals["shouting"] = True
                reasons.append("The answer is mostly capital letters.")
                penalise({"clarity": 2})
        if turn.fallback_used:
            signals["fallback_used"] = True
            reasons.append("The bot reported using its fallback.")
            penalise({"helpfulness": 3, "relevance": 2})
        if turn.has_error or turn.error:
            signals["error"] = True
            reasons.append("The bot reported an error for this turn.")
            penalise({"helpfulness": 3, "accuracy": 2})
        if turn.risk_score:
            # The risk engine's findings are the safety signal: 0 risk → 10, 100 risk → 0.
            signals["risk_score"] = turn.risk_score
            if turn.risk_reasons:
                signals["risk_reasons"] = turn.risk_reasons[:10]
            scores["safety"] = 10 - turn.risk_score / 10
            if turn.risk_score >= 25:
                reasons.append(f"The risk engine scored this turn {turn.risk_score}/100.")
        else:
            scores["safety"] = 10.0
        scores = {name: round(min(10.0, max(0.0, value)), 2) for name, value in scores.items()}
        if not reasons:
            reasons.append("No problem signals found (offline heuristic; facts are not checked).")
        judgment = Judgment(
            scores=scores, hallucination=None, reasoning="Heuristic: " + " ".join(reasons), signals=signals
        )
        return JudgeOutcome(judgment=judgment, calls=[])
