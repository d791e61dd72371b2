"""Response shapes of the monitoring API (also what the OpenAPI schema shows)."""

from django.urls import reverse
from rest_framework import serializers

from backend.monitoring.models import DriftReport, PerformanceBucket


class ColumnDriftSerializer(serializers.Serializer):
    column = serializers.CharField()
    kind = serializers.CharField(help_text="numerical or categorical")
    method = serializers.CharField(help_text="Evidently's test, e.g. ks, wasserstein, chisquare.")
    score = serializers.FloatField(help_text="p-value or distance, as the method gives it.")
    threshold = serializers.FloatField()
    drifted = serializers.BooleanField()


class DriftReportSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.version")
    label = serializers.CharField(source="version.semantic_label")
    drifted = serializers.BooleanField()
    drifted_columns = serializers.ListField(child=serializers.CharField())
    columns = ColumnDriftSerializer(many=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = DriftReport
        fields = [
            "id",
            "model",
            "version",
            "label",
            "status",
            "drifted",
            "message",
            "trigger",
            "window",
            "window_start",
            "window_end",
            "reference_source",
            "reference_size",
            "current_size",
            "drifted_share",
            "dataset_drift",
            "drifted_columns",
            "columns",
            "settings",
            "duration_ms",
            "created_at",
            "links",
        ]

    def get_links(self, report: DriftReport) -> dict[str, str]:
        links = {"self": reverse("api-drift-report-detail", args=[report.pk])}
        if report.html:
            links["html"] = reverse("api-drift-report-html", args=[report.pk])
        return links


class PerformanceBucketSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.version")
    label = serializers.CharField(source="version.semantic_label")
    error_rate = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True, help_text="Correct verdicts / feedback given, if any.")

    class Meta:
        model = PerformanceBucket
        fields = [
            "start",
            "seconds",
            "version",
            "label",
            "requests",
            "predictions",
            "errors",
            "errors_by_code",
            "error_rate",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "inference_mean_ms",
            "confidence_mean",
            "confidence_histogram",
            "class_counts",
            "feedback",
            "feedback_correct",
            "accuracy",
        ]
