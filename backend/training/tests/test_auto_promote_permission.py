"""A training job that promotes its version is a way into production: asking for one needs the
registry's promote permission, and the requester must still hold it when the job ends (otherwise
the version is staged and the job says why). Jobs nobody asked for promote as the system."""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from backend.registry.models import ModelVersion
from backend.training.models import TrainingJob
from backend.training.runner import execute_job
from tests.factories import TrainingJobFactory, UserFactory

pytestmark = pytest.mark.django_db

JOBS_URL = "/api/v1/training-jobs/"


@pytest.fixture
def promoter():
    user = UserFactory(username="promoter", staff=True)
    user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))
    return user


@pytest.fixture
def trainer():
    """Staff who may start training jobs in the admin, but not promote."""
    user = UserFactory(username="trainer", staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_trainingjob", "view_trainingjob"]))
    return user


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_refuses_auto_promote_without_the_promote_permission(staff_user, promoter):
    refused = api(staff_user).post(JOBS_URL, {"kind": "tabular", "auto_promote": True}, format="json")
    assert refused.status_code == 403, refused.content
    error = refused.json()["error"]
    assert error["code"] == "promote_permission_required"
    assert "auto_promote" in error["message"] and "promote permission" in error["message"]
    assert not TrainingJob.objects.exists()

    assert api(staff_user).post(JOBS_URL, {"kind": "tabular"}, format="json").status_code == 201
    allowed = api(promoter).post(JOBS_URL, {"kind": "tabular", "auto_promote": True}, format="json")
    assert allowed.status_code == 201 and allowed.json()["auto_promote"] is True


def test_the_admin_refuses_auto_promote_without_the_promote_permission(client, trainer):
    client.force_login(trainer)
    add_url = reverse("admin:training_trainingjob_add")
    refused = client.post(add_url, {"kind": "tabular", "params": "{}", "auto_promote": "on"})
    assert refused.status_code == 200  # the form again, with the reason
    assert "needs the registry&#x27;s promote permission" in refused.content.decode()
    assert not TrainingJob.objects.exists()

    assert client.post(add_url, {"kind": "tabular", "params": "{}"}).status_code == 302
    assert TrainingJob.objects.get().auto_promote is False

    # "Run again" of someone else's auto-promoting job is refused the same way.
    theirs = TrainingJobFactory(auto_promote=True)
    changelist = reverse("admin:training_trainingjob_changelist")
    page = client.post(changelist, {"action": "run_again", "_selected_action": [theirs.pk]}, follow=True)
    assert "promote permission" in page.content.decode()
    assert TrainingJob.objects.filter(auto_promote=True).count() == 1


def test_the_train_command_runs_as_the_system():
    call_command("train", "--kind", "tabular", "--promote", stdout=StringIO())
    job = TrainingJob.objects.get()
    assert (job.requested_by, job.auto_promote, job.trigger) == (None, True, "manage.py train --promote")


# -- at the end of the job: the runner asks the registry again ------------------------------------
def run(job: TrainingJob) -> TrainingJob:
    """The job, trained in this process (a tiny XGBoost on the breast-cancer table)."""
    assert execute_job(job.pk, task_id=f"test-{job.pk}", hostname="test") == "succeeded"
    job.refresh_from_db()
    return job


@pytest.mark.parametrize("requester", ["lost the permission", "deleted"])
def test_a_requester_who_may_no_longer_promote_gets_a_staged_version(requester, promoter, unique_name):
    job = TrainingJobFactory(
        model_name=unique_name, params={"n_estimators": 4}, auto_promote=True, requested_by=promoter
    )
    if requester == "deleted":
        promoter.delete()
    else:
        promoter.user_permissions.clear()

    job = run(job)
    assert job.model_version.status == ModelVersion.Status.STAGING
    assert not job.model_version.deployments_to.exists()
    assert job.promotion_error.startswith("not promoted: ") and job.promotion_error.endswith("staged for review")
    expected = "no longer exists" if requester == "deleted" else "registry.promote_modelversion"
    assert expected in job.promotion_error


def test_a_job_nobody_asked_for_promotes_as_the_system(unique_name):
    job = TrainingJobFactory(
        model_name=unique_name, params={"n_estimators": 4}, auto_promote=True, trigger="manage.py train --promote"
    )
    job = run(job)
    assert job.promotion_error == ""
    deployment = job.model_version.deployments_to.get()
    assert (job.model_version.status, deployment.actor, deployment.system) == ("production", None, True)
    assert deployment.reason.startswith(f"auto-promoted by training job #{job.pk} (manage.py train --promote): ")
