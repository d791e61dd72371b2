from django.urls import path

from backend.detection import api

urlpatterns = [
    path("detections/", api.DetectionListCreate.as_view(), name="api-detection-list"),
    path("detections/<uuid:pk>/", api.DetectionDetail.as_view(), name="api-detection-detail"),
    path("detections/<uuid:pk>/annotated.png", api.DetectionAnnotated.as_view(), name="api-detection-annotated"),
    path("detections/<uuid:pk>/heatmap.png", api.DetectionHeatmap.as_view(), name="api-detection-heatmap"),
    path("detections/<uuid:pk>/image.jpg", api.DetectionImage.as_view(), name="api-detection-image"),
    path("detections/<uuid:pk>/thumbnail.jpg", api.DetectionThumbnail.as_view(), name="api-detection-thumbnail"),
    path("detections/<uuid:pk>/feedback/", api.DetectionFeedback.as_view(), name="api-detection-feedback"),
    path("batches/", api.BatchListCreate.as_view(), name="api-batch-list"),
    path("batches/<uuid:pk>/", api.BatchDetail.as_view(), name="api-batch-detail"),
    path("batches/<uuid:pk>/results.json", api.BatchResultsJson.as_view(), name="api-batch-results-json"),
    path("batches/<uuid:pk>/results.csv", api.BatchResultsCsv.as_view(), name="api-batch-results-csv"),
]
