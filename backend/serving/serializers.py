"""Response shapes shared by the prediction endpoints (also what the OpenAPI schema shows)."""

from rest_framework import serializers


class ModelRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="The registry's (MLflow's) version number.")
    label = serializers.CharField(help_text="Semantic label, e.g. v1.3.")


class ImageSizeSerializer(serializers.Serializer):
    """An image's size as the model saw it (after EXIF orientation)."""

    width = serializers.IntegerField()
    height = serializers.IntegerField()


class ModelInfoSerializer(serializers.Serializer):
    """A registered model as its users see it: what is in production and what it takes."""

    name = serializers.CharField()
    kind = serializers.CharField()
    description = serializers.CharField()
    production = serializers.DictField(
        allow_null=True, help_text="version, label, metrics, created_at, promoted_at; null when none."
    )
    class_names = serializers.ListField(child=serializers.CharField())
    input_size = serializers.IntegerField(allow_null=True, required=False, help_text="Detection: pixels a side.")
    feature_schema = serializers.ListField(child=serializers.DictField(), required=False, help_text="Tabular.")
    n_features = serializers.IntegerField(required=False, help_text="Tabular.")
