"""Judge backends: a small base class and a registry from kind to class (Healthchecks transports).

`openai` talks to any OpenAI-compatible server; `heuristic` grades offline from explainable
signals. The JUDGE_BACKEND setting picks one.
"""

from .base import (
    BACKENDS,
    ConversationJudgeOutcome,
    JudgeBackend,
    JudgeError,
    JudgeOutcome,
    judge_backend_for,
)
from .heuristic import HeuristicJudge
from .openai_judge import OpenAIJudge

__all__ = [
    "BACKENDS",
    "ConversationJudgeOutcome",
    "HeuristicJudge",
    "JudgeBackend",
    "JudgeError",
    "JudgeOutcome",
    "OpenAIJudge",
    "judge_backend_for",
]
