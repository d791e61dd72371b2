"""Prepare: a seeded split stable under re-runs, a data.yaml that works from anywhere, a content hash."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlops.data.layout import SPLITS
from mlops.data.prepare import SplitSpec, load_prepared, prepare_dataset, split_assignment
from mlops.data.synthetic import ShapesSpec, TabularSpec, generate_shapes, generate_tabular, load_breast_cancer_table
from mlops.exceptions import InvalidInput, NotFound


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("shapes") / "raw", ShapesSpec(count=20, imgsz=64, seed=7))


def _split_of(prepared: Path) -> dict[str, str]:
    return {p.name: p.parent.name for p in (prepared / "images").rglob("*.jpg")}


def test_the_split_is_seeded_and_stable_under_reruns(raw, tmp_path):
    first = prepare_dataset(raw, tmp_path / "a", SplitSpec(val=0.2, test=0.2, seed=1))
    again = prepare_dataset(raw, tmp_path / "b", SplitSpec(val=0.2, test=0.2, seed=1))
    assert _split_of(first.path) == _split_of(again.path)
    assert first.data_version == again.data_version
    assert first.counts == {"train": 12, "val": 4, "test": 4}
    for split in SPLITS:
        images = {p.stem for p in (first.path / "images" / split).iterdir()}
        labels = {p.stem for p in (first.path / "labels" / split).iterdir()}
        assert images == labels

    other = prepare_dataset(raw, tmp_path / "c", SplitSpec(val=0.2, test=0.2, seed=2))
    assert _split_of(other.path) != _split_of(first.path)
    assert other.data_version != first.data_version


def test_tiny_sets_still_get_every_split():
    assignment = split_assignment([f"img{i}" for i in range(3)], SplitSpec(val=0.15, test=0.15))
    assert sorted(assignment.values()) == ["test", "train", "val"]
    assert set(split_assignment(["only"], SplitSpec()).values()) == {"train"}


def test_the_data_version_follows_the_content(raw, tmp_path):
    base = prepare_dataset(raw, tmp_path / "base", SplitSpec(seed=0))
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    label = sorted((copy / "labels").glob("*.txt"))[0]
    label.write_text(label.read_text().replace("0.", "0.0", 1))
    changed = prepare_dataset(copy, tmp_path / "changed", SplitSpec(seed=0))
    assert changed.data_version != base.data_version

    manifest = json.loads(base.manifest_path.read_text())
    assert manifest["data_version"] == base.data_version
    assert len(manifest["files"]) == 2 * 20
    assert {entry["split"] for entry in manifest["files"]} == set(SPLITS)


def test_data_yaml_works_from_any_directory(raw, tmp_path, monkeypatch):
    from ultralytics.data.utils import check_det_dataset

    prepared = prepare_dataset(raw, tmp_path / "prepared", SplitSpec(seed=0))
    moved = tmp_path / "elsewhere" / "prepared"
    shutil.move(prepared.path, moved)  # DVC checks datasets out anywhere
    monkeypatch.chdir(tmp_path)
    data = check_det_dataset(str(moved / "data.yaml"))
    assert Path(data["train"]) == moved / "images" / "train"
    assert Path(data["test"]).is_dir()
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle"}


def test_the_validation_report_travels_with_the_dataset(raw, tmp_path):
    report = tmp_path / "report.json"
    report.write_text('{"errors": [], "warnings": [], "stats": {}}')
    prepared = prepare_dataset(raw, tmp_path / "prepared", validation_report=report)
    assert prepared.validation_report.read_text() == report.read_text()
    assert load_prepared(prepared.path) == prepared
    assert load_prepared(prepared.path, kind="detection") == prepared
    with pytest.raises(InvalidInput) as refused:
        load_prepared(prepared.path, kind="tabular")
    assert refused.value.code == "kind_mismatch"


def test_tabular_split_is_stratified_with_a_feature_schema(tmp_path):
    raw = load_breast_cancer_table(tmp_path / "bc")
    prepared = prepare_dataset(raw, tmp_path / "prepared", SplitSpec(val=0.15, test=0.15, seed=0))
    parts = {split: pd.read_parquet(prepared.split_table(split)) for split in SPLITS}
    assert sum(len(part) for part in parts.values()) == 569
    assert prepared.counts == {split: len(part) for split, part in parts.items()}
    overall = pd.read_parquet(raw / "table.parquet")["target"].mean()
    for part in parts.values():
        assert abs(part["target"].mean() - overall) < 0.03

    schema = json.loads((prepared.path / "feature_schema.json").read_text())
    assert [feature["name"] for feature in schema] == [c for c in parts["train"].columns if c != "target"]
    first = schema[0]
    assert first["dtype"] == "float"
    assert first["min"] == parts["train"]["mean radius"].min()
    assert first["max"] == parts["train"]["mean radius"].max()
    assert first["mean"] == pytest.approx(parts["train"]["mean radius"].mean())
    assert prepared.feature_schema == tuple(schema)

    again = prepare_dataset(raw, tmp_path / "again", SplitSpec(val=0.15, test=0.15, seed=0))
    assert again.data_version == prepared.data_version
    for split in SPLITS:
        pd.testing.assert_frame_equal(parts[split], pd.read_parquet(again.split_table(split)))


def test_integer_features_keep_their_dtype_in_the_schema(tmp_path):
    raw = generate_tabular(tmp_path / "tab", TabularSpec(rows=200, features=5, informative=2, int_features=1))
    prepared = prepare_dataset(raw, tmp_path / "prepared")
    dtypes = {feature["name"]: feature["dtype"] for feature in prepared.feature_schema}
    assert dtypes == {"x00": "float", "x01": "float", "x02": "float", "x03": "float", "n04": "int"}


def test_bad_inputs(tmp_path):
    with pytest.raises(InvalidInput):
        SplitSpec(val=0.6, test=0.5)
    with pytest.raises(NotFound):
        load_prepared(tmp_path)
