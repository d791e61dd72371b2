from django.urls import path

from backend.scoring import views

urlpatterns = [
    path("tabular/predictions/", views.TabularPredictions.as_view(), name="api-tabular-predictions"),
]
