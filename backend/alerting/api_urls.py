from django.urls import path

from backend.alerting import api

urlpatterns = [
    path("alerts/", api.AlertList.as_view(), name="api-alert-list"),
    path("alerts/<int:pk>/", api.AlertDetail.as_view(), name="api-alert-detail"),
    path("alerts/<int:pk>/acknowledge/", api.AlertAcknowledge.as_view(), name="api-alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", api.AlertResolve.as_view(), name="api-alert-resolve"),
    path("alert-rules/", api.AlertRuleList.as_view(), name="api-alert-rule-list"),
    path("notifications/", api.NotificationList.as_view(), name="api-notification-list"),
]
