from django.urls import path

from backend.detection import views

urlpatterns = [
    path("detections/", views.DetectionListCreate.as_view(), name="api-detection-list"),
    path("detections/<uuid:pk>/", views.DetectionDetail.as_view(), name="api-detection-detail"),
    path("detections/<uuid:pk>/annotated.png", views.DetectionAnnotated.as_view(), name="api-detection-annotated"),
    path("detections/<uuid:pk>/heatmap.png", views.DetectionHeatmap.as_view(), name="api-detection-heatmap"),
    path("detections/<uuid:pk>/image.jpg", views.DetectionImage.as_view(), name="api-detection-image"),
    path("detections/<uuid:pk>/thumbnail.jpg", views.DetectionThumbnail.as_view(), name="api-detection-thumbnail"),
    path("detections/<uuid:pk>/feedback/", views.DetectionFeedback.as_view(), name="api-detection-feedback"),
    path("batches/", views.BatchListCreate.as_view(), name="api-batch-list"),
    path("batches/<uuid:pk>/", views.BatchDetail.as_view(), name="api-batch-detail"),
    path("batches/<uuid:pk>/results.json", views.BatchResultsJson.as_view(), name="api-batch-results-json"),
    path("batches/<uuid:pk>/results.csv", views.BatchResultsCsv.as_view(), name="api-batch-results-csv"),
    path("models/<slug:name>/info/", views.ModelInfo.as_view(), name="api-model-info"),
]
