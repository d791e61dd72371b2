from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backend.core import api as core_api

handler400 = "backend.core.errors.bad_request"
handler403 = "backend.core.errors.permission_denied"
handler404 = "backend.core.errors.page_not_found"
handler500 = "backend.core.errors.server_error"

api_v1 = [
    path("", include("backend.registry.api_urls")),
    path("", include("backend.training.api_urls")),
    path("", include("backend.detection.api_urls")),
    path("", include("backend.scoring.api_urls")),
    path("", include("backend.classification.api_urls")),
    path("", include("backend.serving.api_urls")),
    path("", include("backend.monitoring.api_urls")),
    path("", include("backend.alerting.api_urls")),
]

urlpatterns = [
    path("health", core_api.health, name="health"),
    path("health/", core_api.health),
    path("metrics", core_api.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("training/", include("backend.training.urls")),
    path("monitoring/", include("backend.monitoring.urls")),
    path("alerts/", include("backend.alerting.urls")),
    path("scoring/", include("backend.scoring.urls")),
    path("", include("backend.detection.urls")),
]
