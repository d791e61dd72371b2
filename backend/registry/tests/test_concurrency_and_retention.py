"""Concurrent promotions (meaningful on PostgreSQL, where row locks are real), commands and retention."""

import itertools
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from backend.registry import services
from backend.registry.models import Deployment, ModelVersion
from mlops.registry.artifacts import local_path_of
from mlops.registry.retention import select_for_deletion


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_leave_one_production_and_a_consistent_history(register_tabular):
    versions = [register_tabular(0), register_tabular(1), register_tabular(0)]
    name = versions[0].model.name
    start = threading.Barrier(len(versions))
    errors = []

    def promote(version):
        try:
            start.wait()
            services.promote_version(ModelVersion.objects.get(pk=version.pk), reason="race")
        except Exception as exc:  # noqa: BLE001  (collected and checked below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=promote, args=(version,)) for version in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert ModelVersion.objects.filter(model__name=name, status="production").count() == 1
    history = list(Deployment.objects.filter(model__name=name, succeeded=True).order_by("created_at", "id"))
    assert len(history) == 3
    # Each promotion archived exactly the version the previous one installed.
    assert history[0].from_version is None
    for earlier, later in itertools.pairwise(history):
        assert later.from_version_id == earlier.to_version_id
    assert ModelVersion.objects.get(model__name=name, status="production").pk == history[-1].to_version_id


def test_retention_policy_keeps_newest_and_protected():
    assert select_for_deletion([1, 2, 3, 4, 5, 6], protected={2, 3}, keep_latest=2) == [1, 4]
    assert select_for_deletion([1, 2], protected=set(), keep_latest=5) == []
    assert select_for_deletion([1, 2, 3], protected={1}, keep_latest=0) == [2, 3]


@pytest.mark.django_db
def test_cleanup_never_touches_production_or_the_one_before(register_tabular):
    versions = [register_tabular(index % 2) for index in range(5)]
    model = versions[0].model
    services.promote_version(versions[0])
    services.promote_version(versions[1])  # production stack: v1, v2

    out = StringIO()
    call_command("cleanup_versions", "--keep", "1", stdout=out)
    purged = set(
        ModelVersion.objects.filter(model=model, artifacts_deleted_at__isnull=False).values_list("version", flat=True)
    )
    assert purged == {3, 4}
    for version in ModelVersion.objects.filter(model=model):
        onnx = local_path_of(version.artifacts["onnx"]["uri"])
        assert onnx.exists() == (version.version not in purged)

    purged_version = ModelVersion.objects.get(model=model, version=3)
    with pytest.raises(services.SmokeTestFailed):
        services.promote_version(purged_version)
    assert ModelVersion.objects.get(model=model, status="production").version == 2


@pytest.mark.django_db
def test_management_commands_register_promote_roll_back_and_list(model_files, unique_name):
    detector = model_files["detectors"][0]
    other = model_files["detectors"][1]
    out = StringIO()
    call_command(
        "register_model", "--name", unique_name, "--kind", "detection", "--artifact", str(detector.weights),
        "--onnx", str(detector.onnx), "--metrics", '{"mAP50": 0.61}', stdout=out,
    )  # fmt: skip
    call_command(
        "register_model", "--name", unique_name, "--kind", "detection", "--artifact", str(other.weights),
        "--onnx", str(other.onnx), stdout=out,
    )  # fmt: skip
    first = ModelVersion.objects.get(model__name=unique_name, version=1)
    assert first.metadata["class_names"] == detector.class_names
    assert first.metadata["imgsz"] == detector.imgsz
    assert first.metrics == {"mAP50": 0.61}

    call_command("promote", unique_name, "1", stdout=out)
    call_command("promote", unique_name, "2", "--reason", "retrained", stdout=out)
    call_command("rollback", unique_name, stdout=out)
    assert ModelVersion.objects.get(model__name=unique_name, status="production").version == 1
    # The commands act as the system, and the deployments say which command and why.
    history = Deployment.objects.filter(model__name=unique_name).order_by("created_at", "id")
    assert [(d.system, d.actor, d.reason) for d in history] == [
        (True, None, "manage.py promote: promoted from the command line"),
        (True, None, "manage.py promote: retrained"),
        (True, None, "manage.py rollback: rolled back from the command line"),
    ]

    listing = StringIO()
    call_command("list_versions", unique_name, stdout=listing)
    lines = listing.getvalue().splitlines()
    assert "v1.1" in lines[1] and "archived" in lines[1]
    assert "v1.0" in lines[2] and "production" in lines[2] and "mAP50=0.610" in lines[2]


@pytest.mark.django_db
def test_register_command_explains_bad_input(tmp_path, unique_name):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="does not exist"):
        call_command(
            "register_model", "--name", unique_name, "--kind", "tabular", "--artifact", str(tmp_path / "nope.json"),
            "--class-names", "a,b", "--feature-schema", str(tmp_path / "nope.schema.json"),
        )  # fmt: skip
