"""Pages under /training/ (staff only): the job list and a job's live progress."""

from django.urls import path

from backend.training import views

app_name = "training"

urlpatterns = [
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
]
