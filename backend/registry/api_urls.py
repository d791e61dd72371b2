from django.urls import path

from backend.registry import api

urlpatterns = [
    path("models/", api.ModelList.as_view(), name="model-list"),
    path("models/<slug:name>/", api.ModelDetail.as_view(), name="model-detail"),
    path("models/<slug:name>/versions/", api.VersionList.as_view(), name="version-list"),
    path("models/<slug:name>/versions/<int:version>/", api.VersionDetail.as_view(), name="version-detail"),
    path("models/<slug:name>/versions/<int:version>/promote/", api.PromoteVersion.as_view(), name="version-promote"),
    path("models/<slug:name>/versions/<int:version>/approve/", api.ApprovePromotion.as_view(), name="version-approve"),
    path("models/<slug:name>/versions/<int:version>/stage/", api.StageVersion.as_view(), name="version-stage"),
    path("models/<slug:name>/rollback/", api.RollbackModel.as_view(), name="model-rollback"),
    path("models/<slug:name>/deployments/", api.DeploymentList.as_view(), name="deployment-list"),
]
