from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.llm import ModelCall

from ..conversation_rubric import ConversationJudgment, Transcript
from ..rubric import Judgment

if TYPE_CHECKING:
    from apps.chatbots.models import Chatbot
    from apps.conversations.models import Conversation, Turn


@dataclass
class JudgeOutcome:
    """The judgment and every request made for it (stored as LLMCalls with purpose "judge")."""

    judgment: Judgment
    calls: list[ModelCall] = field(default_factory=list)


@dataclass
class ConversationJudgeOutcome:
    """A conversation's judgment, what the judge saw of it, and every request made for it."""

    judgment: ConversationJudgment
    transcript: Transcript | None = None
    calls: list[ModelCall] = field(default_factory=list)


class JudgeError(Exception):
    """A judgment could not be made. `permanent` errors fail the evaluation at once; the others
    are retried with backoff (honouring `retry_after` seconds when the provider sent it)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        calls: list[ModelCall] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.calls = calls or []


class JudgeBackend:
    """Grades one turn. Subclasses set `kind` and `evaluator` and implement `judge`."""

    kind: ClassVar[str]
    evaluator: ClassVar[str]  # an apps.evaluations.choices.Evaluator value

    def __init__(self, *, chatbot: Chatbot) -> None:
        self.chatbot = chatbot

    @property
    def version(self) -> str:
        """Identifies rubric and model: one Evaluation per (turn, version)."""
        raise NotImplementedError

    @property
    def uses_context(self) -> bool:
        """Whether `judge` reads the preceding turns (saves a query when it does not)."""
        return True

    def judge(self, *, turn: Turn, context: list[Turn]) -> JudgeOutcome:
        raise NotImplementedError

    @property
    def conversation_version(self) -> str:
        """Identifies the conversation rubric and model: one ConversationEvaluation per version."""
        raise NotImplementedError

    def judge_conversation(self, *, conversation: Conversation, turns: list[Turn]) -> ConversationJudgeOutcome:
        """Grade a whole conversation (its turns in order) on the conversation rubric."""
        raise NotImplementedError


BACKENDS: dict[str, type[JudgeBackend]] = {}


def register(cls: type[JudgeBackend]) -> type[JudgeBackend]:
    BACKENDS[cls.kind] = cls
    return cls


def judge_backend_for(chatbot: Chatbot, *, kind: str | None = None) -> JudgeBackend:
    kind = kind or settings.JUDGE_BACKEND
    try:
        return BACKENDS[kind](chatbot=chatbot)
    except KeyError:
        raise ImproperlyConfigured(
            f"JUDGE_BACKEND={kind!r} is not one of {', '.join(sorted(BACKENDS))}"
        ) from None
