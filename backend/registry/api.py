"""Registry REST API: read models, versions and history; promote, approve, stage, roll back."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.serializers import ErrorResponseSerializer
from backend.registry import services
from backend.registry.models import ModelVersion, RegisteredModel
from backend.registry.permissions import CanPromote
from backend.registry.serializers import (
    DeploymentSerializer,
    ModelVersionSerializer,
    PromotionRequestSerializer,
    ReasonSerializer,
    RegisteredModelSerializer,
    RollbackSerializer,
)
from mlops.exceptions import NotFound


class ModelList(generics.ListAPIView):
    """Registered models with their production version."""

    permission_classes = [IsAuthenticated]
    serializer_class = RegisteredModelSerializer
    queryset = RegisteredModel.objects.all()


class ModelDetail(generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = RegisteredModelSerializer
    queryset = RegisteredModel.objects.all()
    lookup_field = "name"


class VersionList(generics.ListAPIView):
    """Every version of a model, newest first."""

    permission_classes = [IsAuthenticated]
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        model = RegisteredModel.objects.named(self.kwargs["name"])
        return model.versions.select_related("model").order_by("-version")


class VersionDetail(generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = ModelVersionSerializer

    def get_object(self):
        return get_object_or_404(
            ModelVersion.objects.select_related("model"),
            model__name=self.kwargs["name"],
            version=self.kwargs["version"],
        )


class DeploymentList(generics.ListAPIView):
    """The model's history: promotions, rollbacks and refused attempts, newest first."""

    permission_classes = [IsAuthenticated]
    serializer_class = DeploymentSerializer

    def get_queryset(self):
        model = RegisteredModel.objects.named(self.kwargs["name"])
        return model.deployments.select_related("from_version", "to_version", "actor", "approved_by", "model")


def _reason(request) -> str:
    serializer = ReasonSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["reason"]


class PromoteVersion(APIView):
    """Promote a version to production (or, with approval on, request it)."""

    permission_classes = [CanPromote]

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: DeploymentSerializer,
            202: OpenApiResponse(PromotionRequestSerializer, description="Approval required: request recorded."),
            409: OpenApiResponse(description="Smoke test failed, or already in production."),
        },
    )
    def post(self, request, name: str, version: int):
        reason = _reason(request)
        target = get_object_or_404(ModelVersion.objects.select_related("model"), model__name=name, version=version)
        if settings.REGISTRY_REQUIRE_APPROVAL:
            promotion_request = services.request_promotion(target, user=request.user, reason=reason)
            return Response(PromotionRequestSerializer(promotion_request).data, status=status.HTTP_202_ACCEPTED)
        deployment = services.promote_version(target, actor=request.user, reason=reason)
        return Response(DeploymentSerializer(deployment).data)


class ApprovePromotion(APIView):
    """Approve the pending promotion request of a version (a different staff user than the requester)."""

    permission_classes = [CanPromote]

    @extend_schema(
        request=None,
        responses={
            200: DeploymentSerializer,
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description="No pending request, the requester approving their own, or the smoke test failed.",
            ),
        },
    )
    def post(self, request, name: str, version: int):
        target = get_object_or_404(ModelVersion.objects.select_related("model"), model__name=name, version=version)
        pending = services.pending_request(target)
        if pending is None:
            raise services.RegistryConflict(f"{target} has no pending promotion request")
        deployment = services.approve_promotion(pending, user=request.user)
        return Response(DeploymentSerializer(deployment).data)


class StageVersion(APIView):
    """Make a version the model's staging version (MLflow's `staging` alias follows)."""

    permission_classes = [CanPromote]

    @extend_schema(
        request=None,
        responses={
            200: ModelVersionSerializer,
            409: OpenApiResponse(ErrorResponseSerializer, description="The version is in production."),
        },
    )
    def post(self, request, name: str, version: int):
        target = get_object_or_404(ModelVersion.objects.select_related("model"), model__name=name, version=version)
        return Response(ModelVersionSerializer(services.stage_version(target)).data)


class RollbackModel(APIView):
    """Put back the version that was in production before the current one.

    `from_version` (and `to_version`) pin the step the caller saw: when production moved meanwhile,
    nothing changes and the answer is 409 `production_moved`.
    """

    permission_classes = [CanPromote]

    @extend_schema(
        request=RollbackSerializer,
        responses={
            200: DeploymentSerializer,
            404: OpenApiResponse(description="No such model, or no such version as `from_version` / `to_version`."),
            409: OpenApiResponse(description="Nothing to roll back to, production moved meanwhile, smoke test failed."),
        },
    )
    def post(self, request, name: str):
        serializer = RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = RegisteredModel.objects.named(name)
        deployment = services.rollback_model(
            model,
            actor=request.user,
            reason=data["reason"],
            expected_from=_version_of(model, data.get("from_version")),
            expected_to=_version_of(model, data.get("to_version")),
        )
        return Response(DeploymentSerializer(deployment).data)


def _version_of(model: RegisteredModel, number: int | None) -> ModelVersion | None:
    if number is None:
        return None
    version = model.versions.filter(version=number).first()
    if version is None:
        raise NotFound(f"{model.name} has no version {number}")
    return version
