from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """What watches a model once it is in production: drift reports, their schedules, dashboards, and
    shadow mode (its staging version answering a sample of live predictions)."""

    name = "backend.monitoring"
    label = "monitoring"

    def ready(self) -> None:
        from backend.core import metrics
        from backend.core.panels import PROMOTION, register_panel
        from backend.monitoring import receivers  # noqa: F401  (connects the receivers)
        from backend.monitoring.pages import shadow_promotion_panel
        from backend.monitoring.services.metrics import drift_metrics

        metrics.register_collector(drift_metrics)
        register_panel(shadow_promotion_panel, place=PROMOTION)
