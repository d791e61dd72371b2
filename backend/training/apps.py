from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Training jobs: status, progress and logs in the database, the work on Celery's training queue."""

    name = "backend.training"
    label = "training"

    def ready(self) -> None:
        from backend.core import metrics
        from backend.training import checks, services  # noqa: F401  (checks registers the system checks)

        metrics.register_collector(services.job_metrics)
