"""Stage `evaluate`: score the registered versions' own files on the test split.

The training stages recorded test metrics; this stage fetches what the registry holds (sha256
verified) and scores it again, so the metrics file describes what will be served: the detector's
and the classifier's ONNX files through Ultralytics' validator, the tabular model's XGBoost JSON
and its ONNX conversion (whose probabilities must agree with XGBoost's). The production
comparison is carried along.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlops.data.prepare import load_prepared
from mlops.pipeline.common import METRICS_DIR, config, exit_with, processed_dir, run_stage, write_json
from mlops.pipeline.train_classifier import METRICS_FILE as CLASSIFIER_SUMMARY
from mlops.pipeline.train_detector import METRICS_FILE as DETECTOR_SUMMARY
from mlops.pipeline.train_tabular import METRICS_FILE as TABULAR_SUMMARY
from mlops.registry.entities import ArtifactRole
from mlops.registry.mlflow_store import MlflowModelRegistry

METRICS_FILE = METRICS_DIR / "evaluate.json"


def body(params: dict) -> None:
    registry = MlflowModelRegistry(config())
    write_json(
        METRICS_FILE,
        {
            "detection": evaluate_detection(registry, params),
            "classification": evaluate_classification(registry, params),
            "tabular": evaluate_tabular(registry, params),
        },
    )


def evaluate_detection(registry: MlflowModelRegistry, params: dict) -> dict:
    from mlops.training.yolo import evaluate_detector

    summary = json.loads(DETECTOR_SUMMARY.read_text())
    info = registry.get_version(summary["model_name"], summary["version"])
    metadata = registry.load_metadata(info)
    onnx = registry.fetch(info, [ArtifactRole.ONNX])[ArtifactRole.ONNX]
    data = load_prepared(processed_dir(params, "detection"))
    with tempfile.TemporaryDirectory(prefix="evaluate-") as workdir:
        metrics = evaluate_detector(onnx, data, imgsz=int(metadata["imgsz"]), workdir=Path(workdir))
    return _entry(summary, metrics)


def evaluate_classification(registry: MlflowModelRegistry, params: dict) -> dict:
    from mlops.training.yolo_classify import evaluate_classifier

    summary = json.loads(CLASSIFIER_SUMMARY.read_text())
    info = registry.get_version(summary["model_name"], summary["version"])
    metadata = registry.load_metadata(info)
    onnx = registry.fetch(info, [ArtifactRole.ONNX])[ArtifactRole.ONNX]
    data = load_prepared(processed_dir(params, "classification"), kind="classification")
    with tempfile.TemporaryDirectory(prefix="evaluate-") as workdir:
        metrics = evaluate_classifier(onnx, data, imgsz=int(metadata["imgsz"]), workdir=Path(workdir))
    return _entry(summary, metrics)


def evaluate_tabular(registry: MlflowModelRegistry, params: dict) -> dict:
    import numpy as np
    import onnxruntime as ort
    import pandas as pd
    import xgboost as xgb

    from mlops.inference.convert import ONNX_INPUT, ONNX_PROBABILITIES
    from mlops.training.xgb import classification_metrics, feature_matrix, predict_proba

    summary = json.loads(TABULAR_SUMMARY.read_text())
    info = registry.get_version(summary["model_name"], summary["version"])
    metadata = registry.load_metadata(info)
    files = registry.fetch(info, [ArtifactRole.XGBOOST, ArtifactRole.ONNX])
    data = load_prepared(processed_dir(params, "tabular"))
    test = pd.read_parquet(data.split_table("test"))
    schema = metadata["feature_schema"]
    booster = xgb.Booster()
    booster.load_model(str(files[ArtifactRole.XGBOOST]))
    probabilities = predict_proba(booster, test, schema)
    metrics = classification_metrics(test[data.target].to_numpy(), probabilities)
    session = ort.InferenceSession(str(files[ArtifactRole.ONNX]), providers=["CPUExecutionProvider"])
    outputs = [output.name for output in session.get_outputs()]
    wanted = ONNX_PROBABILITIES if ONNX_PROBABILITIES in outputs else outputs[-1]
    served = session.run([wanted], {ONNX_INPUT: feature_matrix(test, schema)})[0]
    metrics["onnx_max_abs_diff"] = float(np.abs(np.asarray(served, dtype="float64") - probabilities).max())
    return _entry(summary, metrics)


def _entry(summary: dict, metrics: dict) -> dict:
    comparison = summary.get("comparison") or {}
    return {
        "model_name": summary["model_name"],
        "version": summary["version"],
        "test": metrics,
        "production_version": comparison.get("baseline_version"),
        "verdict": comparison.get("verdict"),
        "deltas": comparison.get("deltas") or {},
    }


def main() -> int:
    return run_stage("evaluate", body)


if __name__ == "__main__":
    exit_with(main())
