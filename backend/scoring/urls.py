from django.urls import path

from backend.scoring import pages

urlpatterns = [
    path("", pages.scoring_page, name="scoring"),
]
