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
