"""The JSON error body every API endpoint answers with (backend.core.errors), as the OpenAPI schema shows it."""

from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid_image, image_too_large.")
    message = serializers.CharField(help_text="What is wrong, naming the field or record.")
    details = serializers.DictField(required=False)
    fields = serializers.DictField(required=False, help_text="Validation errors by field.")


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
