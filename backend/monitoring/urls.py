"""Pages under /monitoring/ (staff only)."""

from django.urls import path

from backend.monitoring import pages

app_name = "monitoring"

urlpatterns = [
    path("", pages.model_list, name="model-list"),
    path("models/<slug:name>/", pages.model_dashboard, name="dashboard"),
    path("drift-reports/<int:pk>/", pages.drift_report, name="drift-report"),
]
