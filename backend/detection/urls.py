from django.urls import path

from backend.detection import pages

urlpatterns = [
    path("", pages.detect_page, name="detect"),
    path("history/", pages.history_page, name="history"),
]
