"""The offline evaluator: deterministic scores from explainable signals, no model call.

It cannot check facts, so it never claims a hallucination (None = "cannot tell") and its
accuracy only reflects visible failure signs. Every score is labelled "heuristic" wherever it
is shown; the signals behind it are stored on the Evaluation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..choices import CONVERSATION_CRITERIA, CRITERIA, Evaluator
from ..conversation_rubric import ConversationJudgment
from ..rubric import Judgment
from .base import ConversationJudgeOutcome, JudgeBackend, JudgeOutcome, register

if TYPE_CHECKING:
    from apps.conversations.models import Conversation, Turn

HEURISTIC_VERSION = "heuristic-v1"
HEURISTIC_CONVERSATION_VERSION = "heuristic-conversation-v1"
# Two user messages sharing this share of their key words: the user is asking the same thing again.
REPHRASE_OVERLAP = 0.5
HANDOFF_PHRASES = (
    "speak to a human", "talk to a human", "real person", "speak to someone", "talk to someone",
    "human agent", "an agent", "a person", "customer service", "call me", "supervisor", "manager",
)
FRUSTRATION_PHRASES = (
    "useless", "not helpful", "doesn't help", "does not help", "ridiculous", "terrible", "awful",
    "waste of time", "you don't understand", "you do not understand", "i already said", "i already told",
    "again?", "stupid", "annoying", "frustrat", "!!!",
)

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


    @property
    def conversation_version(self) -> str:
        return HEURISTIC_CONVERSATION_VERSION

    def judge_conversation(self, *, conversation: Conversation, turns: list[Turn]) -> ConversationJudgeOutcome:
        """Start every criterion at 8 and subtract for each signal, naming the turn it is in.

        Signals: the last turn is a fallback, an error or a 👎 (the user left unserved); the user
        rephrasing the same question; a streak of two or more failing turns (error or fallback);
        frustrated wording; asking for a person; the risk engine's highest score (policy).
        """
        return ConversationJudgeOutcome(judgment=conversation_heuristic_judgment(turns), calls=[])


def _failing(turn: Turn) -> bool:
    return bool(turn.fallback_used or turn.has_error or turn.error)


def conversation_heuristic_judgment(turns: list[Turn]) -> ConversationJudgment:
    scores = dict.fromkeys(CONVERSATION_CRITERIA, 8.0)
    signals: dict[str, Any] = {"turns": len(turns)}
    reasons: list[str] = []
    wrong_at: list[int] = []  # turn numbers (1-based) where a signal was found

    def penalise(amounts: dict[str, float]) -> None:
        for name, amount in amounts.items():
            scores[name] -= amount

    last = turns[-1] if turns else None
    if last is not None:
        number = len(turns)
        if last.thumbs_down:
            signals["last_turn_thumbs_down"] = number
            reasons.append(f"The last turn (turn {number}) got a 👎.")
            penalise({"goal_completion": 4, "resolution": 4, "user_frustration": 3})
            wrong_at.append(number)
        if _failing(last):
            signals["last_turn_failed"] = number
            what = "an error" if (last.has_error or last.error) else "the fallback"
            reasons.append(f"The conversation ends on {what} (turn {number}).")
            penalise({"goal_completion": 4, "resolution": 5})
            wrong_at.append(number)

    rephrased: list[int] = []
    previous_words: set[str] = set()
    for number, turn in enumerate(turns, start=1):
        words = _content_words(turn.user_message)
        if words and previous_words:
            overlap = len(words & previous_words) / len(words | previous_words)
            if overlap >= REPHRASE_OVERLAP:
                rephrased.append(number)
        previous_words = words
    if rephrased:
        signals["rephrased_turns"] = rephrased
        reasons.append(
            f"The user asked the same thing again {len(rephrased)} time(s) (turn {', '.join(map(str, rephrased))})."
        )
        penalise({"user_frustration": min(5.0, 2.0 * len(rephrased)), "goal_completion": min(3.0, 1.5 * len(rephrased))})
        wrong_at.append(rephrased[0] - 1)

    longest, start, run_start = 0, 0, 0
    for number, turn in enumerate(turns, start=1):
        if _failing(turn):
            run_start = run_start or number
            if number - run_start + 1 > longest:
                longest, start = number - run_start + 1, run_start
        else:
            run_start = 0
    if longest >= 2:
        signals["failure_streak"] = {"from_turn": start, "turns": longest}
        reasons.append(f"{longest} failing turns in a row (errors or fallbacks) from turn {start}.")
        penalise({"resolution": min(5.0, 1.5 * longest), "user_frustration": 2, "goal_completion": 2})
        wrong_at.append(start)

    frustrated = [(n, phrase) for n, turn in enumerate(turns, start=1)
                  if (phrase := _first(FRUSTRATION_PHRASES, turn.user_message.lower()))]
    if frustrated:
        signals["frustration_phrases"] = [{"turn": n, "phrase": p} for n, p in frustrated[:5]]
        reasons.append(f'The user sounds frustrated (turn {frustrated[0][0]}: "{frustrated[0][1]}").')
        penalise({"user_frustration": min(6.0, 3.0 * len(frustrated))})
        wrong_at.append(frustrated[0][0])

    handoff = next(((n, phrase) for n, turn in enumerate(turns, start=1)
                    if (phrase := _first(HANDOFF_PHRASES, turn.user_message.lower()))), None)
    if handoff:
        signals["handoff_request"] = {"turn": handoff[0], "phrase": handoff[1]}
        reasons.append(f'The user asked for a person (turn {handoff[0]}: "{handoff[1]}").')
        scores["human_handoff"] = 2.0
        penalise({"goal_completion": 2})
        wrong_at.append(handoff[0])
    else:
        scores["human_handoff"] = 10.0 if not reasons else 8.0

    highest_risk = max((turn.risk_score for turn in turns), default=0)
    scores["policy_adherence"] = 10 - highest_risk / 10
    if highest_risk >= 25:
        risky = next(n for n, turn in enumerate(turns, start=1) if turn.risk_score == highest_risk)
        signals["max_risk_score"] = {"turn": risky, "score": highest_risk}
        reasons.append(f"The risk engine scored turn {risky} {highest_risk}/100.")
        wrong_at.append(risky)

    scores = {name: round(min(10.0, max(0.0, value)), 2) for name, value in scores.items()}
    failed_turn = min(n for n in wrong_at if n >= 1) if any(n >= 1 for n in wrong_at) else None
    if not reasons:
        reasons.append("No problem signals found (offline heuristic; whether the goal was met is not checked).")
    return ConversationJudgment(
        scores=scores, handoff_needed=bool(handoff), failed_turn=failed_turn,
        reasoning="Heuristic: " + " ".join(reasons), signals=signals,
    )
