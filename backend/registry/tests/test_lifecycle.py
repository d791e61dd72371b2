"""Register, promote, roll back and promote again, with MLflow's own client checking every step.

Runs against the real MLflow store of the session and a real Celery worker (which mirrors the
aliases), on real tiny models.
"""

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from backend.core.mlops_config import mlops_config
from backend.registry import services
from backend.registry.models import Deployment, ModelVersion, RegisteredModel
from backend.registry.services import promote_version, rollback_model
from mlops.exceptions import InvalidInput, SmokeTestFailed
from mlops.inference.convert import xgboost_json_to_onnx
from mlops.registry.artifacts import local_path_of
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.postgres]


def mlflow_client() -> MlflowClient:
    config = mlops_config()
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)


def mlflow_production(name: str) -> int | None:
    try:
        return int(mlflow_client().get_model_version_by_alias(name, "production").version)
    except MlflowException:
        return None


def assert_agrees_with_mlflow(name: str) -> None:
    """Django's production version and MLflow's `production` alias name the same version."""
    expected = ModelVersion.objects.get(model__name=name, status="production").version
    wait_until(lambda: mlflow_production(name) == expected, timeout=60, what=f"MLflow alias of {name} -> {expected}")
    assert ModelVersion.objects.filter(model__name=name, status="production").count() == 1


def promote(name: str, version: int, user=None, reason: str = "") -> Deployment:
    return promote_version(ModelVersion.objects.get(model__name=name, version=version), actor=user, reason=reason)


@pytest.mark.parametrize("kind", ["detection", "tabular"])
def test_promote_rollback_promote_again(kind, register_detector, register_tabular, celery_worker_process, admin_user):
    register = register_detector if kind == "detection" else register_tabular
    v1, v2 = register(0), register(1)
    name = v1.model.name
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.semantic_label, v2.semantic_label) == ("v1.0", "v1.1")
    assert v1.status == v2.status == "candidate"
    assert v1.artifacts["onnx"]["sha256"] != v2.artifacts["onnx"]["sha256"]

    promote(name, 1, admin_user, "first release")
    assert_agrees_with_mlflow(name)

    promote(name, 2, admin_user, "retrained")
    assert_agrees_with_mlflow(name)
    assert ModelVersion.objects.get(pk=v1.pk).status == "archived"

    rollback_model(RegisteredModel.objects.get(name=name), actor=admin_user, reason="regression")
    assert ModelVersion.objects.get(pk=v1.pk).status == "production"
    assert ModelVersion.objects.get(pk=v2.pk).status == "archived"
    assert_agrees_with_mlflow(name)

    promote(name, 2, admin_user, "fixed")
    assert_agrees_with_mlflow(name)

    history = list(Deployment.objects.filter(model__name=name).order_by("created_at", "id"))
    assert [(d.action, d.from_version and d.from_version.version, d.to_version.version) for d in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
        ("promote", 1, 2),
    ]
    assert all(d.succeeded and d.smoke_test["ok"] for d in history)
    assert [d.reason for d in history] == ["first release", "retrained", "regression", "fixed"]


def test_mlflow_users_can_load_the_production_model(register_tabular, celery_worker_process):
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    version = register_tabular(0)
    name = version.model.name
    promote(name, 1)
    assert_agrees_with_mlflow(name)
    config = mlops_config()
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.registry_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@production")
    schema = version.metadata["feature_schema"]
    record = pd.DataFrame([{feature["name"]: feature["mean"] for feature in schema}])
    probability = np.asarray(loaded.predict(record)).ravel()
    assert probability.shape == (1,) and 0.0 <= probability[0] <= 1.0


def test_corrupted_artifact_is_refused_and_production_unchanged(register_detector, celery_worker_process):
    v1, v2 = register_detector(0), register_detector(1)
    name = v1.model.name
    promote(name, 1)
    assert_agrees_with_mlflow(name)

    stored = local_path_of(v2.artifacts["onnx"]["uri"])
    assert stored is not None and stored.exists()
    stored.write_bytes(stored.read_bytes()[:-100] + b"\0" * 100)

    with pytest.raises(SmokeTestFailed) as raised:
        promote(name, 2, reason="should not go out")
    assert ModelVersion.objects.get(pk=v1.pk).status == "production"
    assert ModelVersion.objects.get(pk=v2.pk).status == "candidate"
    refused = Deployment.objects.get(pk=raised.value.details["deployment"])
    assert not refused.succeeded
    assert "sha256" in refused.error
    assert refused.smoke_test["ok"] is False
    assert_agrees_with_mlflow(name)


def test_model_that_cannot_run_is_refused_by_the_smoke_test(register_detector, model_files):
    """The sha256 matches (the file was registered like that) but the graph is not a detector."""
    good = register_detector(0)
    detector, tabular = model_files["detectors"][1], model_files["tabular"][0]
    tabular_onnx = tabular.model.with_suffix(".onnx")
    xgboost_json_to_onnx(tabular.model, len(tabular.feature_schema), tabular_onnx)
    broken = services.register_from_files(
        good.model.name, "detection", {"weights": detector.weights, "onnx": tabular_onnx}, metadata=detector.metadata
    )
    promote(good.model.name, good.version)
    with pytest.raises(SmokeTestFailed):
        promote(good.model.name, broken.version)
    assert ModelVersion.objects.get(pk=good.pk).status == "production"
    refused = Deployment.objects.get(model=good.model, succeeded=False, to_version=broken)
    assert refused.smoke_test["ok"] is False and refused.smoke_test["detail"]


def test_registering_a_file_that_is_not_onnx_is_refused(model_files, unique_name, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an onnx graph" * 100)
    detector = model_files["detectors"][0]
    with pytest.raises(InvalidInput, match="not a valid ONNX model"):
        services.register_from_files(
            unique_name, "detection", {"weights": detector.weights, "onnx": garbage}, metadata=detector.metadata
        )
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()


def test_rollback_without_history_is_a_conflict(register_tabular):
    version = register_tabular(0)
    promote(version.model.name, 1)
    with pytest.raises(Exception, match="no earlier production version"):
        rollback_model(version.model)


def test_artifact_files_live_under_the_configured_store(register_tabular):
    version = register_tabular(0)
    root = Path(mlops_config().artifact_root).resolve()
    for artifact in version.artifacts.values():
        path = local_path_of(artifact["uri"])
        assert path is not None and path.resolve().is_relative_to(root), artifact["uri"]
