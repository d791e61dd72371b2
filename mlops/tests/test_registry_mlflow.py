"""The MLflow-backed registry on its own (no Django): register, alias, load, verify, purge."""

from pathlib import Path

import numpy as np
import pytest

from mlops.config import MlopsConfig
from mlops.exceptions import IntegrityError, InvalidInput, NotFound
from mlops.registry.artifacts import local_path_of
from mlops.registry.mlflow_store import MlflowModelRegistry
from tests.models import build_detector, build_tabular


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> MlflowModelRegistry:
    var_dir = tmp_path_factory.mktemp("registry-var")
    config = MlopsConfig(
        var_dir=var_dir,
        tracking_uri=f"sqlite:///{var_dir / 'mlflow.db'}",
        registry_uri=f"sqlite:///{var_dir / 'mlflow.db'}",
        artifact_root=str(var_dir / "artifacts"),
    )
    return MlflowModelRegistry(config)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("registry-models")
    return {
        "detectors": [build_detector(directory, seed=seed) for seed in (11, 12)],
        "tabular": build_tabular(directory, seed=5),
    }


def test_register_alias_and_load_by_number_or_alias(registry, files):
    name = "shapes"
    first, second = files["detectors"]
    v1 = registry.register_version(name, "detection", first.files(), metrics={"mAP50": 0.4}, metadata=first.metadata)
    v2 = registry.register_version(name, "detection", second.files(), metadata=second.metadata)
    assert (v1.version, v2.version) == (1, 2)
    assert set(v1.artifacts) == {"weights", "onnx", "metadata"}
    assert v1.metrics == {"mAP50": 0.4}
    assert v1.lineage.run_id == v1.run_id

    assert registry.alias_version(name, "production") is None
    with pytest.raises(NotFound):
        registry.load(name)
    registry.set_alias(name, "production", 1)
    registry.set_alias(name, "staging", 2)
    info, predictor = registry.load(name)
    assert info.version == 1 and "production" in info.aliases
    assert list(predictor.class_names) == first.class_names
    by_number, _ = registry.load(name, 2)
    assert by_number.version == 2 and "staging" in by_number.aliases
    assert [v.version for v in registry.list_versions(name)] == [1, 2]

    registry.set_alias(name, "production", 2)
    assert registry.alias_version(name, "production") == 2
    registry.set_alias(name, "staging", None)
    assert registry.alias_version(name, "staging") is None


def test_tabular_version_gets_onnx_and_schema(registry, files):
    tabular = files["tabular"]
    info = registry.register_version("cancer", "tabular", tabular.files(), metadata=tabular.metadata)
    assert set(info.artifacts) == {"xgboost", "onnx", "feature_schema", "metadata"}
    registry.set_alias("cancer", "production", info.version)
    _, scorer = registry.load("cancer")
    record = {feature["name"]: feature["mean"] for feature in tabular.feature_schema}
    (prediction,) = scorer.predict([record])
    assert prediction.label in tabular.class_names
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_tampered_artifact_fails_verification(registry, files):
    detector = files["detectors"][0]
    info = registry.register_version("tamper", "detection", detector.files(), metadata=detector.metadata)
    stored = local_path_of(info.artifacts["onnx"].uri)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as raised:
        registry.fetch(info, ["onnx"])
    assert raised.value.details["role"] == "onnx"
    assert registry.fetch(info, ["weights"])["weights"].exists()


def test_mlflow_users_load_a_detector_with_pyfunc(registry, files):
    import mlflow.pyfunc

    detector = files["detectors"][1]
    info = registry.register_version("pyfunc-detector", "detection", detector.files(), metadata=detector.metadata)
    registry.set_alias("pyfunc-detector", "production", info.version)
    mlflow.set_registry_uri(registry.config.registry_uri)
    model = mlflow.pyfunc.load_model("models:/pyfunc-detector@production")
    size = detector.imgsz
    outputs = model.predict(np.zeros((1, 3, size, size), dtype=np.float32))
    (raw,) = outputs.values()
    assert raw.shape[0] == 1 and raw.shape[1] == 4 + len(detector.class_names)


def test_purge_deletes_files_but_keeps_the_record(registry, files):
    detector = files["detectors"][0]
    info = registry.register_version("purge", "detection", detector.files(), metadata=detector.metadata)
    registry.set_alias("purge", "production", info.version)
    with pytest.raises(InvalidInput):
        registry.delete_version_artifacts("purge", info.version)
    registry.set_alias("purge", "production", None)
    assert registry.delete_version_artifacts("purge", info.version)
    assert not local_path_of(info.artifacts["onnx"].uri).exists()
    assert registry.get_version("purge", info.version).version == info.version
    with pytest.raises(NotFound):
        registry.fetch(info, ["onnx"])


def test_kind_of_a_name_cannot_change(registry, files):
    tabular = files["tabular"]
    registry.register_version("fixed-kind", "tabular", tabular.files(), metadata=tabular.metadata)
    detector = files["detectors"][0]
    with pytest.raises(InvalidInput, match="tabular"):
        registry.register_version("fixed-kind", "detection", detector.files(), metadata=detector.metadata)


def test_missing_file_is_refused(registry, tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        registry.register_version("missing", "detection", {"onnx": Path(tmp_path / "nope.onnx")})
