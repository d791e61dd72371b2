from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backend.classification import api as classification_api
from backend.core import api as core_api
from backend.detection import api as detection_api
from backend.serving import api as serving_api

handler400 = "backend.core.errors.bad_request"
handler403 = "backend.core.errors.permission_denied"
handler404 = "backend.core.errors.page_not_found"
handler500 = "backend.core.errors.server_error"

# POST /predict for the clients of the services this product replaces: a detector's or a classifier's.
COMPAT_PREDICT = {"detection": detection_api.CompatPredict, "classification": classification_api.CompatPredict}

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
    path("predict", COMPAT_PREDICT[settings.COMPAT_PREDICT_KIND].as_view(), name="compat-predict"),
    path("model/info", serving_api.CompatModelInfo.as_view(), name="compat-model-info"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("training/", include("backend.training.urls")),
    path("monitoring/", include("backend.monitoring.urls")),
    path("alerts/", include("backend.alerting.urls")),
    path("scoring/", include("backend.scoring.urls")),
    path("classify/", include("backend.classification.urls")),
    path("", include("backend.detection.urls")),
]
