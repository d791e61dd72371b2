"""Response shapes of the monitoring API (also what the OpenAPI schema shows)."""

from django.urls import reverse
from rest_framework import serializers

from backend.monitoring.models import DriftReport, PerformanceBucket, ShadowComparison


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


class VersionRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    label = serializers.CharField()


class ShadowSummarySerializer(serializers.Serializer):
    """Agreement of one (production, shadow) pair, pooled over its comparisons (mlops.monitoring.shadow)."""

    model = serializers.CharField()
    kind = serializers.CharField()
    production = VersionRefSerializer()
    shadow = VersionRefSerializer()
    shadow_is_staging = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()
    samples = serializers.IntegerField(help_text="Predictions (images, or tabular calls) answered again.")
    shadow_ms_mean = serializers.FloatField(allow_null=True, help_text="The shadow version's own predict time.")
    boxes_compared = serializers.IntegerField(required=False, help_text="Detection: sum of max(boxes) per image.")
    boxes_matched = serializers.IntegerField(required=False)
    box_match_share = serializers.FloatField(required=False, allow_null=True, help_text="matched / compared")
    mean_confidence_delta = serializers.FloatField(
        required=False, allow_null=True, help_text="Shadow minus production, over matched boxes."
    )
    mean_abs_confidence_delta = serializers.FloatField(required=False, allow_null=True)
    records = serializers.IntegerField(required=False, help_text="Tabular: records compared.")
    records_agreeing = serializers.IntegerField(required=False)
    label_agreement = serializers.FloatField(required=False, allow_null=True)
    mean_probability_delta = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Tabular and classification: mean absolute difference per class, over records or images.",
    )
    mean_label_probability_delta = serializers.FloatField(
        required=False, allow_null=True, help_text="Shadow minus production, on the label production chose."
    )
    images = serializers.IntegerField(required=False, help_text="Classification: images compared.")
    images_agreeing = serializers.IntegerField(required=False, help_text="Images where both chose the same class.")
    top1_agreement = serializers.FloatField(required=False, allow_null=True, help_text="images_agreeing / images")
    mean_top1_probability_delta = serializers.FloatField(
        required=False, allow_null=True, help_text="Shadow minus production, on the class production chose."
    )


class ShadowComparisonSerializer(serializers.ModelSerializer):
    production_version = serializers.IntegerField(source="production_version.version")
    shadow_version = serializers.IntegerField(source="shadow_version.version")

    class Meta:
        model = ShadowComparison
        fields = [
            "id",
            "production_version",
            "shadow_version",
            "prediction_ref",
            "compared",
            "matched",
            "agreement",
            "pairs",
            "mean_delta",
            "mean_abs_delta",
            "details",
            "shadow_ms",
            "created_at",
        ]


class PerformanceResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    bucket = serializers.ChoiceField(choices=["minute", "hour"])
    since = serializers.DateTimeField()
    buckets = PerformanceBucketSerializer(many=True, help_text="Per version and time bucket, oldest first.")


class ShadowResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    since = serializers.DateTimeField(allow_null=True)
    summary = ShadowSummarySerializer(allow_null=True, help_text="Current production vs the staging version.")
    pairs = ShadowSummarySerializer(many=True, help_text="Every version pair compared in the period, latest first.")
    comparisons = ShadowComparisonSerializer(many=True, help_text="The latest comparisons, newest first.")
