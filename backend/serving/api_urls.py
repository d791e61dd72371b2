from django.urls import path

from backend.serving import api

urlpatterns = [
    path("models/<slug:name>/info/", api.ModelInfo.as_view(), name="api-model-info"),
    path("models/<slug:name>/availability/", api.ModelAvailability.as_view(), name="api-model-availability"),
]
