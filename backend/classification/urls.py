from django.urls import path

from backend.classification import pages

app_name = "classification"

urlpatterns = [
    path("", pages.classify_page, name="classify"),
    path("history/", pages.history_page, name="history"),
]
