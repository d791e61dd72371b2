"""Helpers shared by the training tests: a private MLflow store per module, run lookups."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops.config import MlopsConfig, library_env
from mlops.registry.mlflow_store import MlflowModelRegistry

# What MlopsConfig.apply_process_env and the trainers set for the whole process.
PROCESS_ENV = (*library_env("var", tracking_uri="", registry_uri=""), "MLFLOW_EXPERIMENT_NAME")


def store_config(var_dir: Path) -> MlopsConfig:
    """A config whose MLflow store (SQLite) and artifacts live in `var_dir`."""
    var_dir.mkdir(parents=True, exist_ok=True)
    return MlopsConfig(
        var_dir=var_dir,
        tracking_uri=f"sqlite:///{var_dir / 'mlflow.db'}",
        registry_uri=f"sqlite:///{var_dir / 'mlflow.db'}",
        artifact_root=str(var_dir / "mlartifacts"),
        experiment="modelyard-tests",
    )


@contextmanager
def process_env_restored():
    """Put back the environment variables training sets, so later modules see their own."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PROCESS_ENV:
            if name in os.environ:
                patch.setenv(name, os.environ[name])
            else:
                patch.delenv(name, raising=False)
        yield patch


@contextmanager
def training_env(root: Path, prepared):
    """A module's trainings: a private store under root/var, the process environment put back after."""
    with process_env_restored():
        config = store_config(root / "var")
        yield {"config": config, "data": prepared, "registry": MlflowModelRegistry(config), "root": root}


def runs_of(config: MlopsConfig, registry) -> list:
    experiment = registry.experiment_id()
    return registry.client.search_runs([experiment], max_results=200)
