"""The training API under /api/v1/ (staff only)."""

from django.urls import path

from backend.training import views

urlpatterns = [
    path("training-jobs/", views.TrainingJobList.as_view(), name="training-job-list"),
    path("training-jobs/<int:pk>/", views.TrainingJobDetail.as_view(), name="training-job-detail"),
    path("training-jobs/<int:pk>/cancel/", views.CancelTrainingJob.as_view(), name="training-job-cancel"),
]
