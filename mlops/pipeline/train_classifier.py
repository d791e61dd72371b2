"""Stage `train_classifier`: train, register and compare an image classifier; its summary is a metrics file."""

from __future__ import annotations

from mlops.pipeline.common import METRICS_DIR, config, exit_with, processed_dir, run_stage, write_json
from mlops.training.params import ClassifierParams
from mlops.training.yolo_classify import train_classifier

METRICS_FILE = METRICS_DIR / "train_classifier.json"


def body(params: dict) -> None:
    outcome = train_classifier(
        config(),
        ClassifierParams.from_mapping(params.get("train_classifier")),
        processed_dir(params, "classification"),
        model_name=params["registry"]["classification"],
        description="trained by the DVC pipeline",
    )
    write_json(METRICS_FILE, outcome.summary())


def main() -> int:
    return run_stage("train_classifier", body)


if __name__ == "__main__":
    exit_with(main())
