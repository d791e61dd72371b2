from rest_framework import serializers

from backend.registry.models import Deployment, ModelVersion, PromotionRequest, RegisteredModel


class VersionSummarySerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="semantic_label")

    class Meta:
        model = ModelVersion
        fields = ["version", "label", "status", "created_at"]


class RegisteredModelSerializer(serializers.ModelSerializer):
    production = VersionSummarySerializer(source="production_version", read_only=True, allow_null=True)
    versions = serializers.IntegerField(source="versions.count", read_only=True)

    class Meta:
        model = RegisteredModel
        fields = ["name", "kind", "description", "class_names", "production", "versions", "created_at"]


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    label = serializers.CharField(source="semantic_label")
    lineage = serializers.DictField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "version",
            "label",
            "status",
            "description",
            "metrics",
            "comparison",
            "artifacts",
            "metadata",
            "source",
            "lineage",
            "load_error",
            "artifacts_deleted_at",
            "created_at",
        ]


class DeploymentSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    from_version = VersionSummarySerializer(read_only=True, allow_null=True)
    to_version = VersionSummarySerializer(read_only=True, allow_null=True)
    actor = serializers.CharField(source="actor.username", default=None)
    approved_by = serializers.CharField(source="approved_by.username", default=None)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "model",
            "action",
            "from_version",
            "to_version",
            "actor",
            "system",
            "approved_by",
            "reason",
            "succeeded",
            "smoke_test",
            "error",
            "created_at",
        ]


class PromotionRequestSerializer(serializers.ModelSerializer):
    version = VersionSummarySerializer()
    requested_by = serializers.CharField(source="requested_by.username")

    class Meta:
        model = PromotionRequest
        fields = ["id", "version", "requested_by", "reason", "status", "created_at"]


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RollbackSerializer(ReasonSerializer):
    """A rollback may name the step it expects (version numbers): refused with 409 when production moved."""

    from_version = serializers.IntegerField(
        required=False, min_value=1, help_text="The production version this rollback goes back from."
    )
    to_version = serializers.IntegerField(required=False, min_value=1, help_text="The version it goes back to.")
