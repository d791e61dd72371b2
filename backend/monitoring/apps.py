from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """What watches a model once it is in production: drift reports, their schedules, dashboards."""

    name = "backend.monitoring"
    label = "monitoring"
