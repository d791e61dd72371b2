"""Monitoring API (staff): drift reports, their filters and Evidently's HTML report; model performance;
shadow-mode agreement."""

from __future__ import annotations

import gzip
from datetime import UTC, timedelta

from django.core.files.storage import default_storage
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.serializers import ErrorResponseSerializer
from backend.monitoring.models import DriftReport, PerformanceBucket
from backend.monitoring.serializers import (
    DriftReportSerializer,
    PerformanceResponseSerializer,
    ShadowResponseSerializer,
)
from backend.monitoring.services import shadow
from backend.registry.models import RegisteredModel
from mlops.exceptions import NotFound

FILTERS = [
    OpenApiParameter("model", OpenApiTypes.STR, description="Registered model name."),
    OpenApiParameter("version", {"type": "integer", "minimum": 1}, description="Version number (with model)."),
    OpenApiParameter("drifted", OpenApiTypes.BOOL, description="true: only checks that flagged drift."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=DriftReport.Status.values, description="The check's outcome."),
]


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise serializers.ValidationError({name: ["Must be true or false."]})


class DriftReportList(generics.ListAPIView):
    """Drift checks, newest first."""

    permission_classes = [IsAdminUser]
    serializer_class = DriftReportSerializer

    @extend_schema(parameters=FILTERS, responses={200: DriftReportSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        reports = DriftReport.objects.select_related("model", "version__model").order_by("-created_at")
        if params.get("model"):
            reports = reports.filter(model__name=params["model"])
        if params.get("version"):
            if not params["version"].isdigit() or int(params["version"]) < 1:
                raise serializers.ValidationError({"version": ["Must be a version number (1 or more)."]})
            reports = reports.filter(version__version=int(params["version"]))
        drifted = _flag(params.get("drifted"), "drifted")
        if drifted is not None:
            reports = (
                reports.filter(status=DriftReport.Status.DRIFT)
                if drifted
                else reports.exclude(status=DriftReport.Status.DRIFT)
            )
        if params.get("status"):
            if params["status"] not in DriftReport.Status.values:
                raise serializers.ValidationError({"status": [f"One of {', '.join(DriftReport.Status.values)}."]})
            reports = reports.filter(status=params["status"])
        return reports


class DriftReportDetail(generics.RetrieveAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = DriftReportSerializer
    queryset = DriftReport.objects.select_related("model", "version__model")


class DriftReportHtml(APIView):
    """Evidently's HTML report of one check."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        responses={
            (200, "text/html"): OpenApiTypes.STR,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such report, or it has no HTML."),
        }
    )
    def get(self, request, pk: int):
        report = generics.get_object_or_404(DriftReport, pk=pk)
        if not report.html:
            raise NotFound(f"Drift report {pk} has no HTML report ({report.get_status_display()}).", code="no_html")
        with default_storage.open(report.html.name, "rb") as handle:
            body = handle.read()
        compressed = report.html.name.endswith(".gz")
        if compressed and "gzip" not in request.headers.get("Accept-Encoding", ""):
            body, compressed = gzip.decompress(body), False
        response = HttpResponse(body, content_type="text/html; charset=utf-8")
        if compressed:
            response["Content-Encoding"] = "gzip"
        # Evidently's report runs its own scripts: keep it away from the app's cookies and pages.
        response["Content-Security-Policy"] = "sandbox allow-scripts"
        return response


BUCKETS = {"minute": 60, "hour": 3600}
DEFAULT_SPAN = {60: timedelta(hours=6), 3600: timedelta(days=7)}


class ModelPerformance(APIView):
    """A model's rolled-up performance per version and time bucket, oldest first."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter("bucket", OpenApiTypes.STR, enum=list(BUCKETS), description="minute (default) or hour"),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601; default 6 h (minute) or 7 days"),
        ],
        responses={200: PerformanceResponseSerializer, 404: ErrorResponseSerializer},
    )
    def get(self, request, name: str):
        model = RegisteredModel.objects.named(name)
        bucket = request.query_params.get("bucket", "minute")
        if bucket not in BUCKETS:
            raise serializers.ValidationError({"bucket": [f"One of {', '.join(BUCKETS)}."]})
        seconds = BUCKETS[bucket]
        since = _since(request.query_params.get("since"), default=timezone.now() - DEFAULT_SPAN[seconds])
        rows = (
            PerformanceBucket.objects.filter(model=model, seconds=seconds, start__gte=since)
            .select_related("version__model")
            .order_by("start", "version__version")
        )
        body = {"model": model.name, "bucket": bucket, "since": since, "buckets": rows}
        return Response(PerformanceResponseSerializer(body).data)


class ModelShadow(APIView):
    """How a model's staging version agrees with production on the sampled live predictions."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601; default: every comparison"),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 500},
                description="Latest comparisons (default 50)",
            ),
        ],
        responses={200: ShadowResponseSerializer, 404: ErrorResponseSerializer},
    )
    def get(self, request, name: str):
        model = RegisteredModel.objects.named(name)
        since = _since(request.query_params.get("since"), default=None)
        raw_limit = request.query_params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
            raise serializers.ValidationError({"limit": ["A number from 1 to 500."]})
        body = {
            "model": model.name,
            "since": since,
            "summary": shadow.shadow_summary(model, since),
            "pairs": shadow.shadow_pairs(model, since),
            "comparisons": shadow.latest_comparisons(model, since=since, limit=int(raw_limit)),
        }
        return Response(ShadowResponseSerializer(body).data)


def _since(raw: str | None, *, default):
    if raw is None:
        return default
    moment = parse_datetime(raw)
    if moment is None:
        raise serializers.ValidationError({"since": ["An ISO 8601 date and time, e.g. 2026-12-01T08:00:00Z."]})
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
