from django.urls import path

from backend.scoring import api

urlpatterns = [
    path("tabular/predictions/", api.TabularPredictions.as_view(), name="api-tabular-predictions"),
]
