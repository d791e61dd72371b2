from django.urls import path

from backend.classification import api

urlpatterns = [
    path("classifications/", api.ClassificationListCreate.as_view(), name="api-classification-list"),
    path("classifications/<uuid:pk>/", api.ClassificationDetail.as_view(), name="api-classification-detail"),
    path(
        "classifications/<uuid:pk>/thumbnail.jpg",
        api.ClassificationThumbnail.as_view(),
        name="api-classification-thumbnail",
    ),
    path(
        "classifications/<uuid:pk>/feedback/", api.ClassificationFeedback.as_view(), name="api-classification-feedback"
    ),
    path("classifications/batches/", api.ClassificationBatchListCreate.as_view(), name="api-classification-batch-list"),
    path(
        "classifications/batches/<uuid:pk>/",
        api.ClassificationBatchDetail.as_view(),
        name="api-classification-batch-detail",
    ),
    path(
        "classifications/batches/<uuid:pk>/results.json",
        api.ClassificationBatchResultsJson.as_view(),
        name="api-classification-batch-results-json",
    ),
    path(
        "classifications/batches/<uuid:pk>/results.csv",
        api.ClassificationBatchResultsCsv.as_view(),
        name="api-classification-batch-results-csv",
    ),
]
