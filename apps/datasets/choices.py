from django.db import models


class TargetKind(models.TextChoices):
    MODEL = "model", "Model + system prompt (OpenAI-compatible)"
    HTTP = "http", "The bot's HTTP endpoint"
    UPLOADED = "uploaded", "Uploaded answers (JSONL)"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ResultStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class HttpMethod(models.TextChoices):
    POST = "POST", "POST"
    PUT = "PUT", "PUT"


# The reference-based criteria graded beside the judge's rubric (apps.evaluations.choices.CRITERIA).
CORRECTNESS = "correctness"
PROPERTIES = "properties"
# A 0–10 criterion passes at or above this score; a property passes or fails on its own.
PASS_SCORE = 7.0
