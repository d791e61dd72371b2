"""Pages under /alerts/ (staff only)."""

from django.urls import path

from backend.alerting import pages

app_name = "alerting"

urlpatterns = [
    path("", pages.alert_list, name="list"),
    path("<int:pk>/", pages.alert_detail, name="detail"),
    path("<int:pk>/<slug:action>/", pages.alert_action, name="action"),
]
