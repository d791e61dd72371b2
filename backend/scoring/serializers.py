from rest_framework import serializers

from backend.core.fields import SlugField
from backend.serving.serializers import ModelRefSerializer

MAX_RECORDS_PER_CALL = 1000


class ScoreRequestSerializer(serializers.Serializer):
    records = serializers.ListField(
        child=serializers.DictField(),
        allow_empty=False,
        max_length=MAX_RECORDS_PER_CALL,
        help_text="Records of {feature name: number}; every feature of the model's schema, nothing else.",
    )
    model = SlugField(required=False, help_text="Registered tabular model to use (default: DEFAULT_TABULAR_MODEL).")


class RecordPredictionSerializer(serializers.Serializer):
    record = serializers.IntegerField(help_text="Index of the record in the request.")
    label = serializers.CharField()
    class_id = serializers.IntegerField()
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="Class name -> probability.")


class ScoreResponseSerializer(serializers.Serializer):
    request_id = serializers.UUIDField()
    model = ModelRefSerializer(help_text="The version that actually answered.")
    predictions = RecordPredictionSerializer(many=True)
    latency_ms = serializers.FloatField()
