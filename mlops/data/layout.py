"""The on-disk layout of our datasets, shared by ingest, validate and prepare.

Detection, raw (after ingest)::

    <root>/dataset.json            {"kind": "detection", "names": [...], "source": ...}
    <root>/images/<stem>.<ext>
    <root>/labels/<stem>.txt       YOLO lines: class cx cy w h (normalised)

Detection, prepared: the same with `images/<split>/` and `labels/<split>/`, plus `data.yaml`
(for Ultralytics) and `manifest.json` (the content hash). Tabular: `dataset.json` (target,
class names, table file) beside the table; prepared adds `<split>.parquet` and the feature schema.

Classification, raw::

    <root>/dataset.json            {"kind": "classification", "names": [...], "source": ...}
    <root>/<class>/<image>         one folder per class, named exactly as in `names`

Classification, prepared: Ultralytics' classify layout, `<root>/<split>/<class>/<image>`, plus
`manifest.json`; `dataset.json` then carries the split (`"split": {...}`), which is how a prepared
set is told from a raw one whose classes happen to be called train or test. Class names are kept
in sorted order: Ultralytics numbers a classify dataset's classes by their sorted folder names.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlops.exceptions import InvalidInput

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.json"
DATA_YAML = "data.yaml"
FEATURE_SCHEMA_FILE = "feature_schema.json"
VALIDATION_REPORT_FILE = "validation_report.json"
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
TABLE_SUFFIXES = frozenset({".parquet", ".csv"})


@dataclass(frozen=True)
class Sample:
    """One image of a detection dataset and where its label file is (or would be)."""

    image: Path
    label: Path
    split: str | None = None


@dataclass(frozen=True)
class LabelledImage:
    """One image of a classification dataset: its class (the folder it is in) and, once prepared, its split."""

    image: Path
    class_name: str
    split: str | None = None


def write_dataset_info(root: Path, info: dict) -> Path:
    path = Path(root) / DATASET_FILE
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


def read_dataset_info(root: Path) -> dict:
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        raise InvalidInput(f"{root} is not a dataset: {DATASET_FILE} is missing", code="dataset_missing")
    return json.loads(path.read_text())


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder becomes `labels`, the suffix `.txt`."""
    parts = list(image.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def detection_samples(root: Path) -> list[Sample]:
    """Every image under `root/images` (flat or one folder per split), sorted by path."""
    images_dir = Path(root) / "images"
    if not images_dir.is_dir():
        raise InvalidInput(f"{root} has no images/ folder", code="dataset_missing")
    samples = []
    for image in sorted(p for p in images_dir.rglob("*") if is_image(p)):
        relative = image.relative_to(images_dir)
        split = relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] in SPLITS else None
        samples.append(Sample(image=image, label=label_path_for(image), split=split))
    return samples


def is_split_layout(info: dict) -> bool:
    """Has the dataset described by `info` (its dataset.json) been split by prepare?"""
    return "split" in info


def classification_samples(root: Path) -> list[LabelledImage]:
    """Every image in a class folder of a classification dataset (raw or prepared), sorted by path.

    Images anywhere else (beside the class folders, nested deeper) are not samples; validation
    reports them.
    """
    root = Path(root)
    depth = 3 if is_split_layout(read_dataset_info(root)) else 2
    samples = []
    for image in sorted(p for p in root.rglob("*") if is_image(p)):
        parts = image.relative_to(root).parts
        if len(parts) != depth or (depth == 3 and parts[0] not in SPLITS):
            continue
        samples.append(LabelledImage(image=image, class_name=parts[-2], split=parts[0] if depth == 3 else None))
    return samples


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link when on the same filesystem (datasets can be large), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def reset_dir(path: Path) -> Path:
    """An empty directory at `path` (a stage owns its output folder outright)."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
