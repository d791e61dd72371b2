from django.urls import path

from backend.registry import views

urlpatterns = [
    path("models/", views.ModelList.as_view(), name="model-list"),
    path("models/<slug:name>/", views.ModelDetail.as_view(), name="model-detail"),
    path("models/<slug:name>/versions/", views.VersionList.as_view(), name="version-list"),
    path("models/<slug:name>/versions/<int:version>/", views.VersionDetail.as_view(), name="version-detail"),
    path("models/<slug:name>/versions/<int:version>/promote/", views.PromoteVersion.as_view(), name="version-promote"),
    path(
        "models/<slug:name>/versions/<int:version>/approve/", views.ApprovePromotion.as_view(), name="version-approve"
    ),
    path("models/<slug:name>/versions/<int:version>/stage/", views.StageVersion.as_view(), name="version-stage"),
    path("models/<slug:name>/rollback/", views.RollbackModel.as_view(), name="model-rollback"),
    path("models/<slug:name>/deployments/", views.DeploymentList.as_view(), name="deployment-list"),
]
