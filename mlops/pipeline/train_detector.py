"""Stage `train_detector`: train, register and compare a detector; its summary is a metrics file."""

from __future__ import annotations

from mlops.pipeline.common import METRICS_DIR, config, exit_with, processed_dir, run_stage, write_json
from mlops.training.params import DetectorParams
from mlops.training.yolo import train_detector

METRICS_FILE = METRICS_DIR / "train_detector.json"


def body(params: dict) -> None:
    outcome = train_detector(
        config(),
        DetectorParams.from_mapping(params.get("train_detector")),
        processed_dir(params, "detection"),
        model_name=params["registry"]["detection"],
        description="trained by the DVC pipeline",
    )
    write_json(METRICS_FILE, outcome.summary())


def main() -> int:
    return run_stage("train_detector", body)


if __name__ == "__main__":
    exit_with(main())
