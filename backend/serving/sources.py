"""Where a prediction came from, the same choices in every prediction log."""

from django.db import models


class Source(models.TextChoices):
    API = "api", "REST API"
    WEB = "web", "Upload page"
    COMPAT = "compat", "Compatibility endpoint (/predict)"
    BATCH = "batch", "Batch"
