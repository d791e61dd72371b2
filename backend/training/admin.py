"""Admin: start a training job (the add form enqueues it), follow it, cancel it, run it again."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from backend.registry.services import may_promote
from backend.training import services
from backend.training.job_requests import AUTO_PROMOTE_NEEDS_PERMISSION, check_job_request, steps_param
from backend.training.models import TrainingJob
from mlops.exceptions import MlopsError

STATUS_COLOURS = {
    "queued": "#555",
    "running": "#1f5fbf",
    "succeeded": "#1b7f3b",
    "failed": "#b00020",
    "cancelled": "#a36a00",
}


class StartTrainingJobForm(forms.ModelForm):
    """What a person chooses when starting a job; epochs and image size are shortcuts into params.

    `requester` (set by the admin for each request) is who asks: auto_promote needs their promote permission.
    """

    requester = None

    epochs = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Detector or classifier epochs (tabular: boosting rounds). Overrides params.",
    )
    imgsz = forms.IntegerField(
        required=False, min_value=32, help_text="Detector or classifier image size (a multiple of 32)."
    )

    class Meta:
        model = TrainingJob
        fields = ["kind", "model_name", "dataset", "params", "auto_promote"]
        help_texts = {
            "model_name": "Empty: the default model of the kind (DEFAULT_DETECTION_MODEL / "
            "DEFAULT_CLASSIFICATION_MODEL / DEFAULT_TABULAR_MODEL).",
            "dataset": "Empty: synthetic:shapes (detection), synthetic:classification (classification) or "
            "sklearn:breast_cancer (tabular). Also synthetic:tabular, kaggle:OWNER/DATASET, folder:PATH (YOLO "
            "folders or one folder per class) or a prepared dataset's path.",
            "params": 'Overrides over params.yaml, e.g. {"epochs": 5, "imgsz": 320} or {"n_estimators": 200}; '
            '"data" holds ingest options ({"count": 200}, {"per_class": 50}); a search takes "target" '
            '(detection or tabular) and "trials".',
            "auto_promote": "Promote the new version when it beats production (and passes its smoke test); "
            "otherwise it is staged for review. Needs the registry's promote permission.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("model_name", "dataset", "params"):
            self.fields[name].required = False

    def clean(self):
        data = super().clean()
        params = dict(data.get("params") or {})
        kind = data.get("kind") or ""
        if data.get("epochs"):
            params[steps_param(kind, params)] = data["epochs"]
        if data.get("imgsz"):
            params["imgsz"] = data["imgsz"]
        data["params"] = params
        problems = check_job_request(
            kind, model_name=data.get("model_name") or "", dataset=data.get("dataset") or "", params=params
        )
        for name, message in problems.items():
            self.add_error(name if name in self.fields else None, message)
        if data.get("auto_promote") and not may_promote(self.requester):
            self.add_error("auto_promote", AUTO_PROMOTE_NEEDS_PERMISSION)
        return data


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "model_name",
        "status_badge",
        "progress_display",
        "version_link",
        "created_at",
        "duration_display",
        "requested_by",
        "page_link",
    ]
    list_filter = ["status", "kind", "model_name"]
    list_select_related = ["model_version__model", "requested_by"]
    search_fields = ["model_name", "dataset", "mlflow_run_id", "error"]
    actions = ["cancel_jobs", "run_again"]
    fieldsets = [
        (None, {"fields": ["kind", "model_name", "dataset", "params", "auto_promote", "requested_by", "trigger"]}),
        (
            "Progress",
            {"fields": ["status_badge", "stage", "progress_display", "page_link", "metrics", "cancel_requested"]},
        ),
        (
            "Result",
            {
                "fields": [
                    "version_link",
                    "comparison",
                    "promotion_error",
                    "mlflow_link",
                    "data_version",
                    "dataset_path",
                ]
            },
        ),
        ("Error", {"fields": ["error_code", "error", "traceback"], "classes": ["collapse"]}),
        (
            "Execution",
            {
                "fields": [
                    "created_at",
                    "enqueued_at",
                    "enqueue_count",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    "celery_task_id",
                    "worker_hostname",
                    "log_tail",
                ],
                "classes": ["collapse"],
            },
        ),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = StartTrainingJobForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.requester = request.user  # modelform_factory made this class for this request alone
        return form

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["kind", "model_name", "dataset", "epochs", "imgsz", "params", "auto_promote"]})]
        return self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [name for _, options in self.fieldsets for name in options["fields"]]

    def save_model(self, request, obj, form, change):
        """Adding a job starts it: the row is created and enqueued by the service, not saved here."""
        if change:
            return
        data = form.cleaned_data
        job = services.start_job(
            data["kind"],
            model_name=data.get("model_name") or "",
            dataset=data.get("dataset") or "",
            params=data.get("params") or {},
            auto_promote=data.get("auto_promote", False),
            user=request.user,
        )
        obj.pk = job.pk
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            format_html(
                'Training job #{} queued. <a href="{}">Follow its progress</a>.', obj.pk, obj.get_absolute_url()
            ),
            messages.SUCCESS,
        )
        return super().response_add(request, obj, post_url_continue)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The change page is a read-only record: jobs change through their lifecycle only.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # -- columns ---------------------------------------------------------------------------------
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj) -> str:
        text = obj.status + (" (cancelling)" if obj.cancel_requested and obj.status == "running" else "")
        return format_html('<b style="color:{}">{}</b>', STATUS_COLOURS.get(obj.status, "#555"), text)

    @admin.display(description="progress", ordering="progress")
    def progress_display(self, obj) -> str:
        steps = f" {obj.step_unit} {obj.epoch}/{obj.epochs}" if obj.epochs else ""
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}%{}',
            obj.progress,
            round(obj.progress),
            steps,
        )

    @admin.display(description="version")
    def version_link(self, obj) -> str:
        version = obj.model_version
        if version is None:
            return "-"
        url = reverse("admin:registry_modelversion_change", args=[version.pk])
        return format_html(
            '<a href="{}">{} {} ({})</a>', url, version.model.name, version.semantic_label, version.status
        )

    @admin.display(description="MLflow run")
    def mlflow_link(self, obj) -> str:
        if obj.mlflow_run_url:
            return format_html(
                '<a href="{}" target="_blank" rel="noopener">{}</a>', obj.mlflow_run_url, obj.mlflow_run_id
            )
        return obj.mlflow_run_id or "-"

    @admin.display(description="duration")
    def duration_display(self, obj) -> str:
        seconds = obj.duration_s
        if seconds is None:
            return "-"
        minutes, seconds = divmod(int(seconds), 60)
        return f"{minutes}m {seconds:02d}s"

    @admin.display(description="page")
    def page_link(self, obj) -> str:
        return format_html('<a href="{}">live page</a>', obj.get_absolute_url())

    # -- actions ---------------------------------------------------------------------------------
    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        for job in queryset:
            try:
                job = services.cancel_job(job, user=request.user)
            except MlopsError as exc:
                self.message_user(request, f"#{job.pk}: {exc.message}", messages.WARNING)
                continue
            state = "cancelled" if job.status == TrainingJob.Status.CANCELLED else "asked to stop"
            self.log_change(request, job, f"Cancelled training job #{job.pk}")
            self.message_user(request, f"#{job.pk} {state}.", messages.SUCCESS)

    @admin.action(description="Run again with the same settings", permissions=["add"])
    def run_again(self, request, queryset):
        for old in queryset:
            try:
                job = services.start_job(
                    old.kind,
                    model_name=old.model_name,
                    dataset=old.dataset,
                    params=old.params,
                    auto_promote=old.auto_promote,
                    user=request.user,
                )
            except MlopsError as exc:
                self.message_user(request, f"#{old.pk}: {exc.message}", messages.ERROR)
                continue
            self.log_addition(request, job, f"Started as a re-run of training job #{old.pk}")
            self.message_user(
                request,
                format_html(
                    '#{} queued as a re-run of #{}: <a href="{}">follow it</a>.', job.pk, old.pk, job.get_absolute_url()
                ),
                messages.SUCCESS,
            )
