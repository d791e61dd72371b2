from django.apps import AppConfig


class ScoringConfig(AppConfig):
    """Tabular records scored by the production XGBoost model: form and API."""

    name = "backend.scoring"
    label = "scoring"
