"""Pages under /training/ (staff only): the job list and a job's live progress."""

from django.urls import path

from backend.training import pages

app_name = "training"

urlpatterns = [
    path("jobs/", pages.job_list, name="job-list"),
    path("jobs/<int:pk>/", pages.job_detail, name="job-detail"),
]
