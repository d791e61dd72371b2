"""The training API (staff only): list and start jobs, follow one, cancel it."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.training import services
from backend.training.models import TrainingJob
from backend.training.serializers import (
    TrainingJobDetailSerializer,
    TrainingJobSerializer,
    TrainingJobStartSerializer,
)

# Each list filter with the values it takes (None: any).
LIST_FILTERS = {"status": TrainingJob.Status.values, "kind": TrainingJob.Kind.values, "model_name": None}


@extend_schema_view(
    get=extend_schema(
        summary="List training jobs, newest first",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=TrainingJob.Status.values),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=TrainingJob.Kind.values),
            OpenApiParameter("model_name", OpenApiTypes.STR),
        ],
    ),
    post=extend_schema(
        summary="Start a training job",
        request=TrainingJobStartSerializer,
        responses={
            201: TrainingJobDetailSerializer,
            400: OpenApiResponse(description="A bad kind, dataset, model name or params; `fields` names each."),
            403: OpenApiResponse(
                description="Not staff; or auto_promote without the registry's promote permission "
                "(code promote_permission_required)."
            ),
            503: OpenApiResponse(
                description="The task queue does not answer (code queue_unavailable): the job is kept, failed."
            ),
        },
    ),
)
class TrainingJobList(generics.ListCreateAPIView):
    """Staff only: training uses the machine for minutes to hours and registers model versions."""

    permission_classes = [IsAdminUser]
    parser_classes = [JSONParser]  # params is a JSON object: a form would carry it as a string
    serializer_class = TrainingJobSerializer

    def get_queryset(self):
        jobs = TrainingJob.objects.select_related("model_version__model", "requested_by")
        filters = {
            name: self.request.query_params[name] for name in LIST_FILTERS if self.request.query_params.get(name)
        }
        for name, value in filters.items():
            if LIST_FILTERS[name] is not None and value not in LIST_FILTERS[name]:
                raise serializers.ValidationError({name: [f"One of {', '.join(LIST_FILTERS[name])}."]})
        return jobs.filter(**filters)

    def create(self, request, *args, **kwargs):
        request_serializer = TrainingJobStartSerializer(data=request.data)
        request_serializer.is_valid(raise_exception=True)
        job = services.start_job(**request_serializer.validated_data, user=request.user)
        body = TrainingJobDetailSerializer(job).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["page_url"]})


@extend_schema(summary="One training job: progress, per-epoch history, log tail, result or error")
class TrainingJobDetail(generics.RetrieveAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = TrainingJobDetailSerializer
    queryset = TrainingJob.objects.select_related("model_version__model", "requested_by")


class CancelTrainingJob(APIView):
    """Cancel a queued job at once, or ask a running one to stop at its next batch."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Cancel a training job",
        request=None,
        responses={
            200: TrainingJobDetailSerializer,
            409: OpenApiResponse(description="The job already ended."),
        },
    )
    def post(self, request, pk: int):
        job = get_object_or_404(TrainingJob, pk=pk)
        job = services.cancel_job(job, user=request.user)
        return Response(TrainingJobDetailSerializer(job).data)
