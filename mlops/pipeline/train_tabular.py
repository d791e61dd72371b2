"""Stage `train_tabular`: train, register and compare the XGBoost model; summary as metrics."""

from __future__ import annotations

from mlops.pipeline.common import METRICS_DIR, config, exit_with, processed_dir, run_stage, write_json
from mlops.training.params import TabularParams
from mlops.training.xgb import train_tabular

METRICS_FILE = METRICS_DIR / "train_tabular.json"


def body(params: dict) -> None:
    outcome = train_tabular(
        config(),
        TabularParams.from_mapping(params.get("train_tabular")),
        processed_dir(params, "tabular"),
        model_name=params["registry"]["tabular"],
        description="trained by the DVC pipeline",
    )
    write_json(METRICS_FILE, outcome.summary())


def main() -> int:
    return run_stage("train_tabular", body)


if __name__ == "__main__":
    exit_with(main())
