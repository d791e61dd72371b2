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


class TrainingProgressSerializer(serializers.Serializer):
    """The training job a model's first version waits for, as far as it got."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["queued", "running"])
    stage = serializers.CharField(help_text="queued, preparing data, training, registering...")
    step_unit = serializers.CharField(help_text="epoch, round or trial")
    epoch = serializers.IntegerField()
    epochs = serializers.IntegerField(help_text="0 until the first step is known.")
    progress = serializers.FloatField(help_text="Percent done, 0-100.")
    progress_text = serializers.CharField(help_text='"epoch 3 of 30, 10%" (or the stage before the first step).')
    url = serializers.CharField(help_text="The job's page (staff).")


class ModelAvailabilitySerializer(serializers.Serializer):
    """Whether a model answers now, or what it waits for: what the upload and scoring pages poll."""

    name = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["serving", "training", "not_in_production", "missing"],
        help_text="serving: a version is in production; training: a job for its first version is queued or "
        "running; not_in_production: versions, none promoted; missing: no such model, nothing training.",
    )
    kind = serializers.CharField(allow_null=True)
    production = serializers.DictField(allow_null=True, help_text="version, label; null when none.")
    training_job = TrainingProgressSerializer(allow_null=True)


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
