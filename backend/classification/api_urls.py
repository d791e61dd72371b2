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
]
