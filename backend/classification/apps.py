from django.apps import AppConfig


class ClassificationConfig(AppConfig):
    """Images classified by the production YOLO classifier: the prediction log, feedback and API."""

    name = "backend.classification"
    label = "classification"
