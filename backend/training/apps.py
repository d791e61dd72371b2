from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Training jobs: status, progress and logs in the database, the work on Celery's training queue."""

    name = "backend.training"
    label = "training"

    def ready(self) -> None:
        from backend.training import checks  # noqa: F401  (registers the system checks)
