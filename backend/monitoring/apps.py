from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """What watches a model once it is in production: drift reports, their schedules, dashboards."""

    name = "backend.monitoring"
    label = "monitoring"

    def ready(self) -> None:
        from backend.core import metrics
        from backend.monitoring.services.metrics import drift_metrics

        metrics.register_collector(drift_metrics)
