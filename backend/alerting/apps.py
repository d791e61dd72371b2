from django.apps import AppConfig


class AlertingConfig(AppConfig):
    """What tells people when something is wrong: alert rules, alerts, silences, channels, notifications."""

    name = "backend.alerting"
    label = "alerting"

    def ready(self) -> None:
        from backend.alerting import receivers  # noqa: F401  (connects the receivers of the apps' signals)
        from backend.alerting.pages import alerts_panel
        from backend.core.panels import register_panel

        register_panel(alerts_panel)
