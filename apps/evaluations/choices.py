from django.db import models

CRITERIA = ("accuracy", "relevance", "clarity", "helpfulness", "safety")


class Evaluator(models.TextChoices):
    LLM_JUDGE = "llm_judge", "LLM judge"
    HEURISTIC = "heuristic", "Heuristic (offline)"
    HUMAN = "human", "Human"


class EvaluationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


# The conversation rubric: every criterion 0–10 with 10 the best outcome, so "user_frustration"
# 10 means the user stayed calm and "human_handoff" 10 means no person was needed.
CONVERSATION_CRITERIA = ("goal_completion", "resolution", "user_frustration", "policy_adherence", "human_handoff")


class ConversationJudgeTrigger(models.TextChoices):
    IDLE = "idle", "Idle"
    END = "end", "Ended by the bot"
    RERUN = "rerun", "Re-run"
