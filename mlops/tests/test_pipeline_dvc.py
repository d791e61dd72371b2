"""`dvc repro` runs the whole pipeline offline in a copy of the repository, with tiny parameters."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlops.config import MlopsConfig
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.tests.training_support import process_env_restored

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("ingest", "validate", "prepare", "train_detector", "train_classifier", "train_tabular", "evaluate")


def _repository_files() -> list[str]:
    """Tracked and new (not ignored) files: what a clone of the working tree would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["data"]["detection"]["options"].update({"count": 10, "imgsz": 64})
    params["data"]["classification"]["options"].update({"per_class": 10, "imgsz": 32})
    params["train_detector"].update({"epochs": 1, "imgsz": 64, "batch": 4, "plots": False})
    params["train_classifier"].update({"epochs": 1, "imgsz": 32, "batch": 8, "plots": False})
    params["train_tabular"].update({"n_estimators": 20})
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@dataclass(frozen=True)
class Checkout:
    path: Path
    env: dict

    def __truediv__(self, other: str) -> Path:
        return self.path / other


def _dvc(repo: Checkout, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo.path,
        env=repo.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"dvc {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    copy = tmp_path_factory.mktemp("pipeline") / "repo"
    for name in _repository_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    _tiny_params(copy / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "KAGGLE"))}
    env.update(
        {
            "VAR_DIR": str(copy / "var"),  # the MLflow store of this run stays in the copy
            "YOLO_CONFIG_DIR": str(copy / "var" / "ultralytics"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(copy),
        }
    )
    with process_env_restored():
        yield Checkout(copy, env)


@pytest.fixture(scope="module")
def reproduced(repo):
    return _dvc(repo, "repro")


def _registry(repo: Checkout) -> MlflowModelRegistry:
    config = MlopsConfig.from_env(base_dir=repo.path).with_overrides(
        var_dir=repo / "var",
        tracking_uri=f"sqlite:///{repo / 'var' / 'mlflow.db'}",
        registry_uri=f"sqlite:///{repo / 'var' / 'mlflow.db'}",
        artifact_root=str(repo / "var" / "mlartifacts"),
    )
    return MlflowModelRegistry(config)


def test_dvc_repro_runs_every_stage_and_registers_the_models(repo, reproduced):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in reproduced.stdout
    assert len(list((repo / "data/raw/shapes/images").glob("*.jpg"))) == 10
    assert (repo / "data/processed/shapes/data.yaml").is_file()
    assert (repo / "data/processed/breast_cancer/feature_schema.json").is_file()
    assert json.loads((repo / "data/reports/validation_shapes.json").read_text())["errors"] == []
    assert (repo / "dvc.lock").is_file()

    registry = _registry(repo)
    detector = registry.get_version("shapes-detector", 1)
    tabular = registry.get_version("breast-cancer", 1)
    manifest = json.loads((repo / "data/processed/shapes/manifest.json").read_text())
    assert detector.lineage.data_version == manifest["data_version"]
    summary = json.loads((repo / "data/metrics/train_tabular.json").read_text())
    assert (summary["model_name"], summary["version"]) == ("breast-cancer", tabular.version)


def test_the_classification_set_is_ingested_validated_and_split(repo, reproduced):
    raw = repo / "data/raw/shape_classes"
    assert sorted(p.name for p in raw.iterdir() if p.is_dir()) == ["circle", "square", "triangle"]
    assert len(list(raw.glob("*/*.jpg"))) == 30
    report = json.loads((repo / "data/reports/validation_shape_classes.json").read_text())
    assert (report["kind"], report["errors"]) == ("classification", [])
    manifest = json.loads((repo / "data/processed/shape_classes/manifest.json").read_text())
    assert manifest["kind"] == "classification"
    # Ten images per class, cut 6/2/2 in every class (stratified).
    assert manifest["class_counts"] == {
        split: dict.fromkeys(("circle", "square", "triangle"), count)
        for split, count in (("train", 6), ("val", 2), ("test", 2))
    }
    for split in ("train", "val", "test"):
        folders = sorted(p.name for p in (repo / "data/processed/shape_classes" / split).iterdir())
        assert folders == ["circle", "square", "triangle"]


def test_dvc_repro_registers_the_classifier_with_its_data_version(repo, reproduced):
    summary = json.loads((repo / "data/metrics/train_classifier.json").read_text())
    assert (summary["model_name"], summary["epochs_run"]) == ("shapes-classifier", 1)
    assert {"top1", "top5"} <= set(summary["metrics"])
    version = _registry(repo).get_version("shapes-classifier", summary["version"])
    manifest = json.loads((repo / "data/processed/shape_classes/manifest.json").read_text())
    assert version.lineage.data_version == summary["data_version"] == manifest["data_version"]
    shown = json.loads(_dvc(repo, "metrics", "show", "--json").stdout)
    metrics = next(iter(shown.values()))["data"]
    assert metrics["data/metrics/train_classifier.json"]["data"]["metrics"]["top1"] == summary["metrics"]["top1"]
    # The evaluate stage re-scored the registered ONNX file on the same test split: the same accuracy.
    evaluation = metrics["data/metrics/evaluate.json"]["data"]["classification"]
    assert evaluation["version"] == summary["version"]
    assert evaluation["test"]["top1"] == pytest.approx(summary["metrics"]["top1"])


def test_dvc_metrics_show_prints_the_evaluation(repo, reproduced):
    shown = json.loads(_dvc(repo, "metrics", "show", "--json").stdout)
    metrics = next(iter(shown.values()))["data"]
    evaluation = metrics["data/metrics/evaluate.json"]["data"]
    assert 0.0 <= evaluation["detection"]["test"]["mAP50"] <= 1.0
    assert evaluation["tabular"]["test"]["roc_auc"] > 0.9
    assert evaluation["tabular"]["test"]["onnx_max_abs_diff"] < 1e-4  # the served ONNX agrees with XGBoost
    trained = metrics["data/metrics/train_tabular.json"]["data"]["metrics"]
    assert evaluation["tabular"]["test"]["roc_auc"] == pytest.approx(trained["roc_auc"])
    assert "roc_auc" in _dvc(repo, "metrics", "show").stdout


def test_dvc_dag_draws_every_stage(repo, reproduced):
    drawn = _dvc(repo, "dag", "--dot").stdout
    edges = {
        tuple(part.strip().strip('";') for part in line.split("->")) for line in drawn.splitlines() if "->" in line
    }
    assert edges == {
        ("ingest", "validate"),
        ("ingest", "prepare"),
        ("validate", "prepare"),
        ("prepare", "train_detector"),
        ("prepare", "train_classifier"),
        ("prepare", "train_tabular"),
        ("prepare", "evaluate"),
        ("train_detector", "evaluate"),
        ("train_classifier", "evaluate"),
        ("train_tabular", "evaluate"),
    }


def test_nothing_is_left_to_reproduce(repo, reproduced):
    # Ultralytics' label caches inside data/processed are ignored (.dvcignore), so nothing changed.
    status = _dvc(repo, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


def test_a_validation_error_stops_the_pipeline_with_its_report(repo, reproduced, tmp_path):
    # Someone points the pipeline at a folder of their own, with one label of an unknown class.
    broken = tmp_path / "their-dataset"
    shutil.copytree(repo / "data/raw/shapes/images", broken / "images")
    shutil.copytree(repo / "data/raw/shapes/labels", broken / "labels")
    (broken / "data.yaml").write_text("names: [circle, square, triangle]\n")
    sorted((broken / "labels").glob("*.txt"))[0].write_text("9 0.5 0.5 0.2 0.2\n")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["detection"].update({"source": f"folder:{broken}", "options": {}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    manifest_before = (repo / "data/processed/shapes/manifest.json").read_text()

    result = _dvc(repo, "repro", check=False)

    assert result.returncode != 0
    assert "class_out_of_range" in result.stdout + result.stderr
    report = json.loads((repo / "data/reports/validation_shapes.json").read_text())
    assert [error["code"] for error in report["errors"]] == ["class_out_of_range"]
    assert "Running stage 'prepare'" not in result.stdout
    assert (repo / "data/processed/shapes/manifest.json").read_text() == manifest_before
