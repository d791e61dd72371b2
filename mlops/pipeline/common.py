"""What every stage shares: where things go, the parameters, logging, and exit codes."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from mlops.config import MlopsConfig
from mlops.exceptions import MlopsError
from mlops.training.params import load_params_file

logger = logging.getLogger("mlops.pipeline")

RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")
REPORTS_DIR = Path("data/reports")
METRICS_DIR = Path("data/metrics")
KINDS = ("detection", "classification", "tabular")


def params(path: Path | str = "params.yaml") -> dict:
    """params.yaml of the working directory: DVC runs stages from the repository root."""
    found = load_params_file(path)
    if not found:
        raise MlopsError(f"{path} is missing or empty; stages run from the repository root", code="params_missing")
    return found


def dataset_name(all_params: dict, kind: str) -> str:
    return str(all_params["data"][kind]["name"])


def raw_dir(all_params: dict, kind: str) -> Path:
    return RAW_DIR / dataset_name(all_params, kind)


def processed_dir(all_params: dict, kind: str) -> Path:
    return PROCESSED_DIR / dataset_name(all_params, kind)


def report_path(all_params: dict, kind: str) -> Path:
    return REPORTS_DIR / f"validation_{dataset_name(all_params, kind)}.json"


def config() -> MlopsConfig:
    """The ML core's configuration from the environment (VAR_DIR, MLFLOW_*), rooted here."""
    built = MlopsConfig.from_env(base_dir=Path.cwd())
    built.apply_process_env()
    return built


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def run_stage(name: str, body: Callable[[dict], None]) -> int:
    """Run a stage body with logging set up; an MlopsError is one clear line and exit code 1."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        body(params())
    except MlopsError as exc:
        logger.error("stage.failed stage=%s code=%s message=%s", name, exc.code, exc.message)
        if exc.details.get("report_path"):
            logger.error("stage.report stage=%s path=%s", name, exc.details["report_path"])
        return 1
    logger.info("stage.done stage=%s", name)
    return 0


def exit_with(code: int) -> None:
    sys.exit(code)
