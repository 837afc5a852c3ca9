from django.db import models


class Rating(models.TextChoices):
    UP = "up", "👍 Thumbs up"
    DOWN = "down", "👎 Thumbs down"


class FeedbackSource(models.TextChoices):
    WIDGET = "widget", "Widget"
    API = "api", "Bot API"
    IMPORT = "import", "Import"
