from django.urls import path

from backend.monitoring import api

urlpatterns = [
    path("drift-reports/", api.DriftReportList.as_view(), name="api-drift-report-list"),
    path("drift-reports/<int:pk>/", api.DriftReportDetail.as_view(), name="api-drift-report-detail"),
    path("drift-reports/<int:pk>/report.html", api.DriftReportHtml.as_view(), name="api-drift-report-html"),
    path("models/<slug:name>/performance/", api.ModelPerformance.as_view(), name="api-model-performance"),
    path("models/<slug:name>/shadow/", api.ModelShadow.as_view(), name="api-model-shadow"),
]
