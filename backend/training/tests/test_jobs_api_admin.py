"""Training jobs without a worker: who may start, see and cancel them; what a bad request hears back;
the admin's start form and actions; the claim; the reaper's verdicts; bootstrap_models idempotence.

Rows are created in a transaction that is rolled back, so starting a job sends no message here
(enqueueing happens on commit): the few tests that publish one do it themselves. The worker tests
run the jobs for real.
"""

from datetime import timedelta
from io import StringIO

import pytest
from celery import current_app
from celery.signals import before_task_publish
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from backend.registry.models import RegisteredModel
from backend.registry.services import model_registry
from backend.training import broker, jobs, reaper, services
from backend.training.job_requests import steps_param
from backend.training.models import TrainingJob
from backend.training.tasks import run_job
from tests.factories import TrainingJobFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

JOBS_URL = "/api/v1/training-jobs/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def make_job(**fields) -> TrainingJob:
    return TrainingJobFactory(**{"model_name": "breast-cancer", **fields})


# -- the API ---------------------------------------------------------------------------------------
def test_only_staff_may_use_the_training_api(plain_user, staff_user):
    job = make_job()
    anonymous = APIClient()
    for response in (
        anonymous.get(JOBS_URL),
        anonymous.post(JOBS_URL, {"kind": "tabular"}, format="json"),
        anonymous.get(f"{JOBS_URL}{job.pk}/"),
        anonymous.post(f"{JOBS_URL}{job.pk}/cancel/"),
    ):
        assert response.status_code == 401  # no credentials: the token challenge, not 403
        assert response["WWW-Authenticate"] == "Token"
        assert "error" in response.json()

    reader = client_for(plain_user)
    assert reader.get(JOBS_URL).status_code == 403
    denied = reader.post(JOBS_URL, {"kind": "tabular"}, format="json")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    assert reader.post(f"{JOBS_URL}{job.pk}/cancel/").status_code == 403
    assert TrainingJob.objects.count() == 1
    assert TrainingJob.objects.get(pk=job.pk).status == "queued"

    staff = client_for(staff_user)
    created = staff.post(JOBS_URL, {"kind": "tabular", "params": {"n_estimators": 15}}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "queued"
    assert body["model_name"] == "breast-cancer"  # DEFAULT_TABULAR_MODEL
    assert body["dataset"] == "sklearn:breast_cancer"
    assert body["requested_by"] == "staff"
    assert created["Location"] == f"/training/jobs/{body['id']}/"
    listing = staff.get(JOBS_URL).json()
    assert [item["id"] for item in listing["results"]] == [body["id"], job.pk]
    detail = staff.get(f"{JOBS_URL}{body['id']}/").json()
    assert detail["params"] == {"n_estimators": 15}
    assert detail["history"] == []
    assert staff.get(JOBS_URL, {"status": "queued", "kind": "detection"}).json()["count"] == 0


@override_settings(DEFAULT_DETECTION_MODEL="shapes-default")
def test_bad_requests_name_the_bad_fields(staff_user):
    RegisteredModel.objects.create(name="already-tabular", kind="tabular")
    staff = client_for(staff_user)
    cases = [
        ({"kind": "painting"}, "kind"),
        ({"kind": "detection", "params": {"epoch": 3}}, "params"),  # a typo is refused, never trained with defaults
        ({"kind": "detection", "params": {"imgsz": 100}}, "params"),  # not a multiple of 32
        ({"kind": "detection", "params": {"split": {"val": 2}}}, "params"),
        ({"kind": "tabular", "params": {"max_depth": 0}}, "params"),
        ({"kind": "detection", "dataset": "sklearn:breast_cancer"}, "dataset"),
        ({"kind": "tabular", "dataset": "kaggle:no-slash"}, "dataset"),
        ({"kind": "tabular", "dataset": "ftp:somewhere"}, "dataset"),
        ({"kind": "tabular", "dataset": "/no/such/folder"}, "dataset"),
        ({"kind": "detection", "model_name": "already-tabular"}, "model_name"),
        ({"kind": "detection", "model_name": "spaces are bad"}, "model_name"),
        ({"kind": "search", "params": {"trials": 0}}, "params"),
        ({"kind": "search", "params": {"target": "audio"}}, "params"),
        ({"kind": "tabular", "params": [1, 2]}, "params"),
        ({"kind": "detection", "params": {"data": {"cnt": 5}}}, "params"),  # ShapesSpec has no such option
        ({"kind": "tabular", "params": {"data": {"rows": 5}}}, "params"),  # the bundled table takes no options
        ({"kind": "detection", "params": {"trials": 3}}, "params"),  # only a search has trials
        ({"kind": "search", "params": {"space": {"depth": {"type": "int", "low": 1, "high": 3}}}}, "params"),
    ]
    for payload, field in cases:
        response = staff.post(JOBS_URL, payload, format="json")
        assert response.status_code == 400, (payload, response.content)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert list(error["fields"]) == [field], payload
        assert error["message"].startswith(f"{field}: ")
    assert TrainingJob.objects.count() == 0

    fine = staff.post(JOBS_URL, {"kind": "detection", "params": {"epochs": 1, "imgsz": 64}}, format="json")
    assert fine.status_code == 201
    assert fine.json()["model_name"] == "shapes-default"
    assert fine.json()["dataset"] == "synthetic:shapes"


def test_cancelling_a_queued_job_ends_it_and_a_finished_one_is_a_conflict(staff_user):
    staff = client_for(staff_user)
    job = make_job(celery_task_id="task-that-never-ran")
    response = staff.post(f"{JOBS_URL}{job.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.error_code) == ("cancelled", True, "cancelled")
    assert job.finished_at is not None
    again = staff.post(f"{JOBS_URL}{job.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_conflict"
    # A message delivered after the cancel finds nothing to claim.
    assert jobs.claim_job(job.pk, task_id="late", hostname="w@h") is None

    running = make_job(status="running", started_at=timezone.now(), heartbeat_at=timezone.now())
    asked = staff.post(f"{JOBS_URL}{running.pk}/cancel/").json()
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    assert jobs.cancel_requested(running.pk)


def test_a_job_is_claimed_once(staff_user):
    job = services.start_job("tabular", params={"n_estimators": 5}, user=staff_user)
    claimed = jobs.claim_job(job.pk, task_id="t-1", hostname="trainer@a")
    assert claimed is not None
    assert (claimed.status, claimed.worker_hostname, claimed.celery_task_id) == ("running", "trainer@a", "t-1")
    # The same message redelivered (or a duplicate sent by the reaper) never trains twice.
    assert jobs.claim_job(job.pk, task_id="t-1", hostname="trainer@b") is None
    assert jobs.claim_job(job.pk, task_id="t-2", hostname="trainer@a") is None
    assert TrainingJob.objects.get(pk=job.pk).worker_hostname == "trainer@a"


def test_api_schema_documents_the_training_endpoints(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/training-jobs/"])
    assert "get" in paths["/api/v1/training-jobs/{id}/"]
    assert "post" in paths["/api/v1/training-jobs/{id}/cancel/"]
    start = schema["components"]["schemas"]["TrainingJobStart"]
    assert {"kind", "model_name", "dataset", "params", "auto_promote"} <= set(start["properties"])


# -- pages and admin ---------------------------------------------------------------------------------
def test_job_pages_are_for_staff(client, plain_user, staff_user):
    job = make_job(
        status="running",
        epoch=3,
        epochs=10,
        progress=30.0,
        history=[{"epoch": 1, "train/logloss": 0.6}],
        log_tail="epoch 3 done",
    )
    page = reverse("training:job-detail", args=[job.pk])
    assert client.get(page).status_code == 302
    client.force_login(plain_user)
    assert client.get(page).status_code == 302  # to the admin login: staff only
    client.force_login(staff_user)
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Training job #{job.pk}" in html
    assert 'id="training-job-data"' in html  # the first render's data, then the script polls the API
    assert "training/job.js" in html
    assert "round 3 of 10" in html  # a tabular job counts boosting rounds
    listing = client.get(reverse("training:job-list"))
    assert listing.status_code == 200
    assert f"#{job.pk}" in listing.content.decode()
    assert 'http-equiv="refresh"' in listing.content.decode()  # an active job: the list refreshes itself


def test_admin_starts_cancels_and_reruns_jobs(client, admin_user):
    client.force_login(admin_user)
    add_url = reverse("admin:training_trainingjob_add")
    assert client.get(add_url).status_code == 200
    bad = client.post(add_url, {"kind": "detection", "params": "{}", "imgsz": 100, "dataset": ""})
    assert bad.status_code == 200  # the form again, with the error
    assert "multiple of 32" in bad.content.decode()
    assert TrainingJob.objects.count() == 0

    response = client.post(
        add_url, {"kind": "detection", "params": '{"batch": 4}', "epochs": 2, "imgsz": 64, "auto_promote": "on"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    job = TrainingJob.objects.get()
    assert (job.kind, job.status, job.requested_by, job.auto_promote) == ("detection", "queued", admin_user, True)
    assert job.params == {"batch": 4, "epochs": 2, "imgsz": 64}
    assert job.model_name == "shapes-detector"

    change = client.get(reverse("admin:training_trainingjob_change", args=[job.pk]))
    assert change.status_code == 200
    changelist = reverse("admin:training_trainingjob_changelist")
    assert client.get(changelist).status_code == 200

    client.post(changelist, {"action": "run_again", "_selected_action": [job.pk]})
    rerun = TrainingJob.objects.exclude(pk=job.pk).get()
    assert (rerun.params, rerun.status, rerun.auto_promote) == (job.params, "queued", True)

    client.post(changelist, {"action": "cancel_jobs", "_selected_action": [job.pk, rerun.pk]})
    assert set(TrainingJob.objects.values_list("status", flat=True)) == {"cancelled"}


def test_epochs_set_the_step_count_of_the_jobs_trainer():
    """The admin's and the `train` command's --epochs: boosting rounds for a tabular trainer."""
    assert steps_param("detection", {}) == "epochs"
    assert steps_param("tabular", {}) == "n_estimators"
    assert steps_param("search", {}) == "n_estimators"  # a search tunes a tabular model unless told
    assert steps_param("search", {"target": "detection"}) == "epochs"


def test_staff_without_training_permissions_sees_no_admin_for_jobs(client, staff_user):
    client.force_login(staff_user)
    assert client.get(reverse("admin:training_trainingjob_add")).status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="add_trainingjob"))
    assert client.get(reverse("admin:training_trainingjob_add")).status_code == 200


# -- the reaper ------------------------------------------------------------------------------------
@override_settings(TRAINING_STALE_AFTER_SECONDS=600)
def test_reaper_fails_silent_and_orphaned_jobs_only():
    now = timezone.now()

    def running(seconds_ago: int, host: str = "trainer@a", task: str = "t") -> TrainingJob:
        beat = now - timedelta(seconds=seconds_ago)
        return make_job(status="running", started_at=beat, heartbeat_at=beat, worker_hostname=host, celery_task_id=task)

    silent = running(601, task="t-silent")  # stale heartbeat, whatever the workers say
    # Its worker died mid-training and left the MLflow run open.
    mlflow = model_registry().client
    run = mlflow.create_run(model_registry().experiment_id(), run_name="orphaned")
    TrainingJob.objects.filter(pk=silent.pk).update(mlflow_run_id=run.info.run_id)
    worker_gone = running(120, host="trainer@gone", task="t-gone")
    process_gone = running(120, task="t-lost")  # the worker answers, but not with this task
    healthy = running(120, task="t-ok")
    fresh = running(5, host="trainer@gone", task="t-fresh")  # too recent to judge by the workers
    workers = {"trainer@a": {"t-ok", "t-silent"}}

    result = reaper.reap_stale_jobs(now=now, workers=workers, broker_task_ids=set())
    assert sorted(result.failed) == sorted([silent.pk, worker_gone.pk, process_gone.pk])
    states = {job.pk: (job.status, job.error_code) for job in TrainingJob.objects.all()}
    assert states[silent.pk] == ("failed", "heartbeat_lost")
    assert states[worker_gone.pk] == ("failed", "worker_lost")
    assert states[process_gone.pk] == ("failed", "worker_lost")
    assert states[healthy.pk] == ("running", "")
    assert states[fresh.pk] == ("running", "")
    silent.refresh_from_db()
    assert "no heartbeat" in silent.error and silent.finished_at is not None
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"

    # Unknown worker state (broker unreachable): only the heartbeat rule applies.
    unknown = running(601, host="trainer@x")
    merely_quiet = running(120, host="trainer@x")
    result = reaper.reap_stale_jobs(now=now, workers=None, broker_task_ids=set())
    assert result.failed == [unknown.pk]
    assert TrainingJob.objects.get(pk=merely_quiet.pk).status == "running"


@override_settings(TRAINING_STALE_AFTER_SECONDS=600)
def test_reaper_leaves_waiting_queued_jobs_and_gives_up_on_lost_ones():
    now = timezone.now()
    old = now - timedelta(seconds=700)
    waiting = make_job(enqueued_at=old, celery_task_id="in-queue", enqueue_count=1)
    lost_too_often = make_job(enqueued_at=old, celery_task_id="gone", enqueue_count=reaper.MAX_ENQUEUES)
    recent = make_job(enqueued_at=now - timedelta(seconds=30), celery_task_id="recent", enqueue_count=1)

    result = reaper.reap_stale_jobs(now=now, workers={}, broker_task_ids={"in-queue"})
    assert result.failed == [lost_too_often.pk]
    assert result.requeued == []
    assert TrainingJob.objects.get(pk=lost_too_often.pk).error_code == "message_lost"
    assert TrainingJob.objects.get(pk=waiting.pk).status == "queued"
    assert TrainingJob.objects.get(pk=recent.pk).status == "queued"

    # A broker we cannot look into: queued jobs are left alone rather than judged on a guess.
    result = reaper.reap_stale_jobs(now=now, workers={}, broker_task_ids=None)
    assert result.failed == [] and result.requeued == []


def test_the_reaper_sees_messages_waiting_in_the_broker():
    """A real message on the test Redis, in a queue no worker consumes, is found by its task id."""
    queue = f"training-probe-{timezone.now().timestamp():.0f}"
    run_job.apply_async(kwargs={"job_id": 0}, task_id="probe-task", queue=queue)
    try:
        assert "probe-task" in broker.pending_task_ids(queue)
        assert "probe-task" not in broker.pending_task_ids("training-probe-empty")
    finally:
        with current_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


def test_finishing_is_conditional_on_the_state():
    job = make_job(status="running", started_at=timezone.now(), heartbeat_at=timezone.now())
    assert jobs.finish_failed(job.pk, message="worker lost", code="worker_lost")
    assert not jobs.finish_cancelled(job.pk)  # already failed: the cancel does not overwrite it
    assert not jobs.finish_failed(job.pk, message="again", code="training_failed")
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "worker_lost")


# -- bootstrap_models ------------------------------------------------------------------------------
@override_settings(
    DEFAULT_DETECTION_MODEL="boot-detector",
    DEFAULT_CLASSIFICATION_MODEL="boot-classifier",
    DEFAULT_TABULAR_MODEL="boot-tabular",
    BOOTSTRAP_DETECTOR_EPOCHS=7,
    BOOTSTRAP_DETECTOR_IMGSZ=96,
    BOOTSTRAP_DETECTOR="shapes",  # the pretrained first detector: test_bootstrap_detector.py
)
def test_bootstrap_models_queues_each_default_model_once():
    out = StringIO()
    call_command("bootstrap_models", stdout=out)
    # Queued fastest first, so one trainer answers the tabular model, then the classifier, then the detector.
    queued = list(TrainingJob.objects.order_by("created_at", "id"))
    assert [job.model_name for job in queued] == ["boot-tabular", "boot-classifier", "boot-detector"]
    jobs = {job.model_name: job for job in queued}
    detector, classifier, tabular = jobs["boot-detector"], jobs["boot-classifier"], jobs["boot-tabular"]
    assert (detector.kind, detector.dataset, detector.auto_promote) == ("detection", "synthetic:shapes", True)
    assert detector.params["epochs"] == 7 and detector.params["imgsz"] == 96
    # The classifier trains with params.yaml's settings on params.yaml's synthetic classification set.
    assert (classifier.kind, classifier.dataset, classifier.auto_promote) == (
        "classification",
        "synthetic:classification",
        True,
    )
    assert classifier.params == {}
    assert (tabular.kind, tabular.dataset, tabular.auto_promote) == ("tabular", "sklearn:breast_cancer", True)
    # Nobody asked: the jobs are the system's (they will promote as the system), and say what started them.
    assert {(job.requested_by, job.trigger.split(":")[0]) for job in jobs.values()} == {(None, "bootstrap_models")}
    assert out.getvalue().count("queued training job") == 3
    assert "boot-classifier (classification): queued training job" in out.getvalue()

    again = StringIO()
    call_command("bootstrap_models", stdout=again)  # `make run` a second time
    assert TrainingJob.objects.count() == 3
    assert again.getvalue().count("already queued") == 3

    # The database refuses a second active bootstrap job even when two runs race past the check.
    with pytest.raises(services.JobConflict):
        services.start_job("tabular", model_name="boot-tabular", dedupe_key="bootstrap:boot-tabular")

    # `make run` again after one was stopped mid-training: the orphaned job is failed and re-queued.
    quiet = timezone.now() - timedelta(seconds=60)
    TrainingJob.objects.filter(pk=tabular.pk).update(
        status="running", started_at=quiet, heartbeat_at=quiet, worker_hostname="trainer@stopped", celery_task_id="t"
    )
    restarted = StringIO()
    call_command("bootstrap_models", stdout=restarted)
    assert f"marked interrupted training jobs failed: #{tabular.pk}" in restarted.getvalue()
    assert TrainingJob.objects.get(pk=tabular.pk).error_code == "worker_lost"
    tabular = TrainingJob.objects.get(model_name="boot-tabular", status="queued")

    # A failed bootstrap is retried by the next run; a model with versions is left to people.
    TrainingJob.objects.filter(pk=tabular.pk).update(status="failed")
    TrainingJob.objects.filter(pk=detector.pk).update(status="succeeded")
    RegisteredModel.objects.create(name="boot-detector", kind="detection").versions.create(version=1)
    third = StringIO()
    call_command("bootstrap_models", stdout=third)
    assert "none in production" in third.getvalue()
    assert TrainingJob.objects.filter(model_name="boot-tabular", status="queued").count() == 1
    assert TrainingJob.objects.filter(model_name="boot-detector").count() == 1


def test_a_job_is_sent_by_task_name_to_the_training_queue():
    """The service names the task rather than importing it; the routes still send it to `training`."""
    job = make_job()
    sent = []

    def record(sender=None, body=None, routing_key=None, headers=None, **kwargs):
        sent.append((sender, routing_key, headers["id"], body[1]))

    before_task_publish.connect(record, weak=False)
    try:
        assert services.enqueue_job(job.pk)
    finally:
        before_task_publish.disconnect(record)
        with current_app.connection_for_write() as connection:
            connection.default_channel.queue_purge("training")  # the row is never committed: nothing to run
    job.refresh_from_db()
    assert sent == [("training.run_job", "training", job.celery_task_id, {"job_id": job.pk})]
    assert (job.enqueue_count, job.status) == (1, "queued")


def test_with_tasks_always_eager_a_job_runs_at_once_in_this_process(monkeypatch, tmp_path):
    """CELERY_TASK_ALWAYS_EAGER (debugging) still runs the job inline although it is sent by name."""
    monkeypatch.setitem(current_app.conf, "task_always_eager", True)
    job = make_job(dataset=str(tmp_path))  # an empty folder: the job fails fast, at its data
    assert services.enqueue_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "unsupported_layout")
    assert job.started_at is not None and job.enqueue_count == 1


def test_the_reaper_is_routed_to_the_default_worker_not_behind_training_jobs():
    router = current_app.amqp.router
    assert router.route({}, "training.reap_stale_jobs", (), {})["queue"].name == "default"
    assert router.route({}, "training.run_job", (), {})["queue"].name == "training"
