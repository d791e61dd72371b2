from django.urls import path

from backend.detection import api, pages

urlpatterns = [
    path("", pages.detect_page, name="detect"),
    path("history/", pages.history_page, name="history"),
    # Compatibility with the clients of the system this product replaces (GET /health is in core).
    path("predict", api.CompatPredict.as_view(), name="compat-predict"),
    path("model/info", api.CompatModelInfo.as_view(), name="compat-model-info"),
]
