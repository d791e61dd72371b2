"""Validation catches each defect it lists: a clean dataset, then one copy per defect."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlops.data.synthetic import ShapesSpec, generate_shapes, load_breast_cancer_table
from mlops.data.validate import ValidationPolicy, validate_dataset
from mlops.exceptions import DataValidationError


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("clean") / "raw", ShapesSpec(count=6, imgsz=64, seed=11))


@pytest.fixture
def dataset(clean, tmp_path) -> Path:
    copy = tmp_path / "raw"
    shutil.copytree(clean, copy)
    return copy


def _first(dataset: Path, folder: str) -> Path:
    return sorted((dataset / folder).iterdir())[0]


def _errors(dataset: Path, policy: ValidationPolicy | None = None) -> tuple[set, set, dict]:
    with pytest.raises(DataValidationError) as info:
        validate_dataset(dataset, policy=policy, report_path=dataset.parent / "report.json")
    report = info.value.details["report"]
    assert json.loads((dataset.parent / "report.json").read_text()) == report
    return {e["code"] for e in report["errors"]}, {w["code"] for w in report["warnings"]}, report


def test_a_clean_dataset_passes_and_reports_its_stats(dataset, tmp_path):
    report = validate_dataset(dataset, report_path=tmp_path / "reports" / "shapes.json")
    assert report.ok and not report.errors
    written = json.loads((tmp_path / "reports" / "shapes.json").read_text())
    assert set(written) >= {"errors", "warnings", "stats"}
    assert written["stats"]["images"] == 6
    assert sum(written["stats"]["classes"].values()) == written["stats"]["boxes"] > 0
    assert written["stats"]["width"] == {"min": 64, "max": 64}


def test_undecodable_image(dataset):
    _first(dataset, "images").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    errors, _, report = _errors(dataset)
    assert errors == {"undecodable_image"}
    assert report["errors"][0]["file"].startswith("images/")


def test_truncated_image(dataset):
    image = _first(dataset, "images")
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    assert _errors(dataset)[0] == {"undecodable_image"}


def test_missing_label_file(dataset):
    _first(dataset, "labels").unlink()
    assert _errors(dataset)[0] == {"missing_label"}


@pytest.mark.parametrize(
    "line",
    ["0 0.5 0.5 0.2", "0 0.5 0.5 0.2 0.2 0.1", "zero 0.5 0.5 0.2 0.2", "0.5 0.5 0.5 0.2 0.2", "0 0.5 0.5 0 0.2"],
)
def test_malformed_label_lines(dataset, line):
    label = _first(dataset, "labels")
    label.write_text(label.read_text() + line + "\n")
    errors, _, report = _errors(dataset)
    assert errors == {"malformed_label"}
    assert report["errors"][0]["file"].endswith(f":{len(label.read_text().splitlines())}")


def test_class_id_out_of_range(dataset):
    label = _first(dataset, "labels")
    label.write_text(label.read_text() + "7 0.5 0.5 0.1 0.1\n")
    assert _errors(dataset)[0] == {"class_out_of_range"}


@pytest.mark.parametrize("line", ["0 0.98 0.5 0.2 0.2", "1 0.5 -0.05 0.1 0.1", "2 120 80 30 30"])
def test_box_outside_the_image(dataset, line):
    label = _first(dataset, "labels")
    label.write_text(label.read_text() + line + "\n")
    assert _errors(dataset)[0] == {"box_outside_image"}


def test_a_box_within_tolerance_passes(dataset):
    label = _first(dataset, "labels")
    label.write_text(label.read_text() + "0 0.9 0.5 0.205 0.1\n")  # right edge at 1.0025
    assert validate_dataset(dataset).ok


def test_empty_image_is_only_a_warning(dataset):
    _first(dataset, "labels").write_text("")
    report = validate_dataset(dataset)
    assert report.ok
    assert report.codes("warnings") == {"empty_image"}
    assert report.stats["empty_images"] == 1


def test_duplicate_images(dataset):
    image, label = _first(dataset, "images"), _first(dataset, "labels")
    shutil.copyfile(image, dataset / "images" / "copy.jpg")
    shutil.copyfile(label, dataset / "labels" / "copy.txt")
    errors, _, report = _errors(dataset)
    assert errors == {"duplicate_image"}
    assert "copy.jpg" in report["errors"][0]["message"]
    relaxed = validate_dataset(dataset, policy=ValidationPolicy(duplicates="warning"))
    assert relaxed.ok and "duplicate_image" in relaxed.codes("warnings")


def test_class_imbalance_is_a_warning(dataset):
    labels = sorted((dataset / "labels").glob("*.txt"))
    for label in labels:
        label.write_text("0 0.25 0.25 0.1 0.1\n0 0.75 0.75 0.1 0.1\n")
    labels[0].write_text("1 0.5 0.5 0.1 0.1\n")
    report = validate_dataset(dataset, policy=ValidationPolicy(imbalance_ratio=5))
    assert report.ok
    assert report.codes("warnings") == {"class_imbalance", "class_without_examples"}
    assert report.stats["classes"] == {"circle": 10, "square": 1, "triangle": 0}


def test_orphan_label_is_a_warning(dataset):
    (dataset / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert validate_dataset(dataset).codes("warnings") == {"orphan_label"}


def test_every_defect_is_reported_at_once(dataset):
    images, labels = sorted((dataset / "images").iterdir()), sorted((dataset / "labels").iterdir())
    images[0].write_bytes(b"garbage")
    labels[1].unlink()
    labels[2].write_text("9 0.5 0.5 0.1 0.1\n")
    labels[3].write_text("")
    errors, warnings, _ = _errors(dataset)
    assert errors == {"undecodable_image", "missing_label", "class_out_of_range"}
    assert "empty_image" in warnings


def test_tabular_checks(tmp_path):
    root = load_breast_cancer_table(tmp_path / "bc")
    assert validate_dataset(root).ok
    frame = pd.read_parquet(root / "table.parquet")
    frame.loc[3, "target"] = None
    frame["note"] = "text"
    frame["flat"] = 1.0
    frame.loc[5, "mean radius"] = None
    frame.to_parquet(root / "table.parquet", index=False)
    with pytest.raises(DataValidationError) as info:
        validate_dataset(root)
    report = info.value.details["report"]
    assert {e["code"] for e in report["errors"]} == {"target_missing_values", "non_numeric_feature"}
    assert {w["code"] for w in report["warnings"]} == {"missing_values", "constant_feature"}
