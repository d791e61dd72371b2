from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """Image uploads, detections, heatmaps and feedback: web pages and API."""

    name = "backend.detection"
    label = "detection"
