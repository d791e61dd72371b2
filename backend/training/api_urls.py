"""The training API under /api/v1/ (staff only)."""

from django.urls import path

from backend.training import api

urlpatterns = [
    path("training-jobs/", api.TrainingJobList.as_view(), name="training-job-list"),
    path("training-jobs/<int:pk>/", api.TrainingJobDetail.as_view(), name="training-job-detail"),
    path("training-jobs/<int:pk>/cancel/", api.CancelTrainingJob.as_view(), name="training-job-cancel"),
]
