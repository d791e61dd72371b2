"""The libraries' environment: one list of variables, put into the process without undoing a choice."""

import os
from pathlib import Path

from mlops.config import MlopsConfig, apply_library_env, library_env


def test_the_library_env_points_ultralytics_under_var_and_forbids_unpickling(tmp_path):
    env = library_env(tmp_path)
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert env["YOLO_CONFIG_DIR"] == str(tmp_path / "ultralytics")
    assert (env["YOLO_OFFLINE"], env["YOLO_AUTOINSTALL"]) == ("true", "false")
    assert "MLFLOW_TRACKING_URI" not in env
    assert library_env(tmp_path, "sqlite:///a.db", "sqlite:///b.db")["MLFLOW_REGISTRY_URI"] == "sqlite:///b.db"


def test_applying_keeps_the_process_choices_but_never_allows_unpickling(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", "/elsewhere")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///old.db")
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    apply_library_env(library_env(tmp_path, "sqlite:///new.db"))
    assert os.environ["YOLO_CONFIG_DIR"] == "/elsewhere"
    assert os.environ["YOLO_OFFLINE"] == "true"
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///new.db"

    apply_library_env(library_env(tmp_path), override=True)
    assert os.environ["YOLO_CONFIG_DIR"] == str(tmp_path / "ultralytics")


def test_a_config_applies_its_own_store(tmp_path, monkeypatch):
    for name in library_env(tmp_path, "", ""):
        monkeypatch.delenv(name, raising=False)
    config = MlopsConfig(
        var_dir=Path(tmp_path), tracking_uri="sqlite:///t.db", registry_uri="sqlite:///r.db", artifact_root="x"
    )
    config.apply_process_env()
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///t.db"
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///r.db"
    assert os.environ["YOLO_CONFIG_DIR"] == str(config.ultralytics_dir)
