"""The Django side of the product. The Celery app is exposed here so `celery -A backend` works."""

from backend.config.celery import app as celery_app

__all__ = ["celery_app"]
