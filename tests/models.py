"""Real, tiny models for tests: YOLO built from a model yaml (no downloaded weights), XGBoost on
scikit-learn's bundled breast-cancer table. Each seed gives different weights, hence different files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DETECTION_CLASSES = ["circle", "square", "triangle"]


@dataclass(frozen=True)
class DetectorFiles:
    weights: Path
    onnx: Path
    class_names: list[str]
    imgsz: int

    @property
    def metadata(self) -> dict:
        return {"class_names": self.class_names, "imgsz": self.imgsz, "architecture": "yolo11n", "task": "detect"}

    def files(self) -> dict[str, Path]:
        return {"weights": self.weights, "onnx": self.onnx}


@dataclass(frozen=True)
class TabularFiles:
    model: Path
    feature_schema: list[dict]
    class_names: list[str]
    reference: Path | None = None  # a drift reference table (features + proba_<class>), when a test made one

    @property
    def metadata(self) -> dict:
        return {"class_names": self.class_names, "feature_schema": self.feature_schema, "target": "diagnosis"}

    def files(self) -> dict[str, Path]:
        return {"xgboost": self.model, **({"reference": self.reference} if self.reference else {})}


@dataclass(frozen=True)
class ClassifierFiles:
    weights: Path
    onnx: Path
    class_names: list[str]
    imgsz: int

    @property
    def metadata(self) -> dict:
        return {"class_names": self.class_names, "imgsz": self.imgsz, "architecture": "yolo11n-cls", "task": "classify"}

    def files(self) -> dict[str, Path]:
        return {"weights": self.weights, "onnx": self.onnx}


def build_detector(directory: Path, *, seed: int, imgsz: int = 64, yaml: str = "yolo11n.yaml") -> DetectorFiles:
    """An untrained YOLO from `yaml` with 3 classes, saved as .pt and exported to ONNX."""
    # Ultralytics' environment (offline, no auto-install, settings under VAR_DIR) is set by the
    # project's settings, which pytest-django imported before any test ran.
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = YOLO(yaml)
    model.model = DetectionModel(yaml, nc=len(DETECTION_CLASSES), verbose=False)
    model.model.names = dict(enumerate(DETECTION_CLASSES))
    weights = directory / f"detector-{seed}.pt"
    model.save(weights)
    exported = Path(YOLO(weights).export(format="onnx", imgsz=imgsz, simplify=False, verbose=False))
    onnx = directory / f"detector-{seed}.onnx"
    exported.replace(onnx)
    return DetectorFiles(weights=weights, onnx=onnx, class_names=list(DETECTION_CLASSES), imgsz=imgsz)


def build_tabular(directory: Path, *, seed: int, rounds: int = 20) -> TabularFiles:
    """An XGBoost classifier of the breast-cancer table, saved in XGBoost's JSON format."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    directory.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": seed, "subsample": 0.8},
        xgb.DMatrix(frame, label=data.target),
        num_boost_round=rounds,
    )
    model = directory / f"tabular-{seed}.json"
    booster.save_model(model)
    schema = [
        {
            "name": name,
            "dtype": "float",
            "min": float(frame[name].min()),
            "max": float(frame[name].max()),
            "mean": float(frame[name].mean()),
        }
        for name in frame.columns
    ]
    (directory / f"tabular-{seed}.schema.json").write_text(json.dumps(schema))
    return TabularFiles(model=model, feature_schema=schema, class_names=list(data.target_names))


def build_classifier(directory: Path) -> ClassifierFiles:
    """A tiny yolo11n-cls with 3 classes whose answers differ between images (mlops.tests.classifier_support),
    saved as .pt and exported to ONNX."""
    from mlops.tests.classifier_support import IMGSZ, NAMES, build_classifier, export_classifier

    directory.mkdir(parents=True, exist_ok=True)
    weights = build_classifier(directory)
    onnx = export_classifier(weights, directory / "classifier.onnx")
    return ClassifierFiles(weights=weights, onnx=onnx, class_names=list(NAMES), imgsz=IMGSZ)
