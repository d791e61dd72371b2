from django.urls import reverse
from rest_framework import serializers

from backend.core.fields import BooleanField, CharField, NumberField
from backend.training.job_requests import check_job_request
from backend.training.models import TrainingJob


class JobVersionSerializer(serializers.Serializer):
    """The registry version a job produced, with a link to it in the admin."""

    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField()
    label = serializers.CharField(source="semantic_label")
    status = serializers.CharField()
    admin_url = serializers.SerializerMethodField()

    def get_admin_url(self, version) -> str:
        return reverse("admin:registry_modelversion_change", args=[version.pk])


class TrainingJobSerializer(serializers.ModelSerializer):
    """A job as the list shows it: what, how far, how it ended."""

    requested_by = serializers.CharField(source="requested_by.username", default=None)
    model_version = JobVersionSerializer(read_only=True, allow_null=True)
    mlflow_run_url = serializers.CharField(read_only=True)
    page_url = serializers.CharField(source="get_absolute_url", read_only=True)
    duration_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "kind",
            "model_name",
            "dataset",
            "params",
            "auto_promote",
            "promote_margin",
            "trigger",
            "status",
            "stage",
            "cancel_requested",
            "epoch",
            "epochs",
            "progress",
            "metrics",
            "model_version",
            "promotion_error",
            "mlflow_run_id",
            "mlflow_run_url",
            "data_version",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "duration_s",
            "error",
            "error_code",
            "page_url",
        ]
        read_only_fields = fields


class TrainingJobDetailSerializer(TrainingJobSerializer):
    """Everything about one job, including the per-epoch curves, the log tail and the traceback."""

    class Meta(TrainingJobSerializer.Meta):
        fields = [
            *TrainingJobSerializer.Meta.fields,
            "history",
            "comparison",
            "log_tail",
            "traceback",
            "dataset_path",
            "mlflow_experiment_id",
            "celery_task_id",
            "worker_hostname",
            "enqueued_at",
            "enqueue_count",
        ]
        read_only_fields = fields


class TrainingJobStartSerializer(serializers.Serializer):
    """A training request. Unset fields take the defaults of the kind (model name, dataset, params.yaml)."""

    kind = serializers.ChoiceField(choices=TrainingJob.Kind.choices)
    model_name = CharField(required=False, allow_blank=True, default="", max_length=100)
    dataset = CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        help_text="synthetic:shapes, synthetic:classification, sklearn:breast_cancer, synthetic:tabular, "
        "kaggle:OWNER/DATASET, folder:PATH (YOLO folders, one folder per class or a table) or the path of a "
        "prepared dataset.",
    )
    params = serializers.DictField(
        required=False,
        default=dict,
        help_text="Trainer overrides over params.yaml (train_detector, train_classifier or train_tabular), e.g. "
        '{"epochs": 5, "imgsz": 320}; "data" holds ingest options, "split" the split ratios, "validate" the '
        'validation policy; a search takes "target" (detection|tabular) and "trials".',
    )
    auto_promote = BooleanField(
        required=False,
        default=False,
        help_text="Promote the new version when it beats production on the same holdout by promote_margin; "
        "otherwise it is staged for review. Needs the registry's promote permission (403 otherwise), held "
        "again when the job ends (else the version is staged).",
    )
    promote_margin = NumberField(required=False, default=0.0, min_value=-1.0, max_value=1.0)

    def validate(self, attrs: dict) -> dict:
        problems = check_job_request(
            attrs["kind"], model_name=attrs["model_name"], dataset=attrs["dataset"], params=attrs["params"]
        )
        if problems:
            raise serializers.ValidationError({name: [message] for name, message in problems.items()})
        return attrs
