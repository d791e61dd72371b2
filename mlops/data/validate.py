"""Check a dataset before anything trains on it, and write what was found as a JSON report.

The report is `{"errors": [...], "warnings": [...], "stats": {...}}`; each finding is
`{"code", "message", "file"?}`. Errors stop the pipeline (DataValidationError carries the report
in `details["report"]`); warnings (empty images, class imbalance...) are only reported.

Identical images are found by the sha256 of their bytes. In a classification set the same image
under two classes is always an error (the labels contradict each other); the same image twice in
one class or, once prepared, in two splits (a test image the model trained on) follows
`duplicates`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mlops.data.layout import (
    DATASET_FILE,
    MANIFEST_FILE,
    SPLITS,
    VALIDATION_REPORT_FILE,
    classification_samples,
    detection_samples,
    is_image,
    is_split_layout,
    read_dataset_info,
)
from mlops.exceptions import DataValidationError, InvalidInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationPolicy:
    """The thresholds validation applies; params.yaml's `validate` section fills it."""

    box_tolerance: float = 0.01  # normalised coordinates may overshoot [0, 1] by this much
    imbalance_ratio: float = 10.0  # most / least frequent class above this: a warning
    duplicates: str = "error"  # "error" or "warning": identical images can leak across splits
    max_image_pixels: int = 40_000_000
    min_class_images: int = 10  # classification: a class with fewer images is an error (every split needs some)

    @classmethod
    def from_mapping(cls, values: dict | None) -> ValidationPolicy:
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"unknown validation parameters {unknown}", code="bad_params")
        policy = cls(**values)
        if policy.duplicates not in ("error", "warning"):
            raise InvalidInput("validate.duplicates is 'error' or 'warning'", code="bad_params")
        if policy.min_class_images < 1:
            raise InvalidInput("validate.min_class_images is at least 1", code="bad_params")
        return policy


@dataclass(frozen=True)
class ValidationReport:
    kind: str
    errors: tuple[dict, ...]
    warnings: tuple[dict, ...]
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self, level: str = "errors") -> set[str]:
        return {finding["code"] for finding in getattr(self, level)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "errors": list(self.errors), "warnings": list(self.warnings), "stats": self.stats}


class _Findings:
    def __init__(self) -> None:
        self.errors: list[dict] = []
        self.warnings: list[dict] = []

    def error(self, code: str, message: str, file: str | None = None) -> None:
        self.errors.append(_finding(code, message, file))

    def warning(self, code: str, message: str, file: str | None = None) -> None:
        self.warnings.append(_finding(code, message, file))

    def by_policy(self, policy: ValidationPolicy, code: str, message: str, file: str | None = None) -> None:
        """An error or a warning, as the policy says duplicates are."""
        (self.error if policy.duplicates == "error" else self.warning)(code, message, file)


def _finding(code: str, message: str, file: str | None) -> dict:
    return {"code": code, "message": message, **({"file": file} if file else {})}


def validate_dataset(
    dataset_dir: Path | str,
    *,
    policy: ValidationPolicy | None = None,
    report_path: Path | str | None = None,
    raise_on_error: bool = True,
) -> ValidationReport:
    """Validate a raw or prepared dataset of either kind, write the report, raise on errors."""
    dataset_dir = Path(dataset_dir)
    policy = policy or ValidationPolicy()
    info = read_dataset_info(dataset_dir)
    if info.get("kind") == "tabular":
        report = _validate_tabular(dataset_dir, info, policy)
    elif info.get("kind") == "classification":
        report = _validate_classification(dataset_dir, info, policy)
    else:
        report = _validate_detection(dataset_dir, info, policy)
    if report_path is not None:
        report_path = Path(report_path)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    logger.info(
        "data.validated dataset=%s errors=%s warnings=%s", dataset_dir, len(report.errors), len(report.warnings)
    )
    if raise_on_error and report.errors:
        codes = sorted(report.codes())
        raise DataValidationError(
            f"dataset {dataset_dir.name} failed validation: {len(report.errors)} errors ({', '.join(codes)})",
            details={"report": report.to_dict(), "report_path": str(report_path) if report_path else None},
        )
    return report


# -- detection --------------------------------------------------------------------------------


def _validate_detection(root: Path, info: dict, policy: ValidationPolicy) -> ValidationReport:
    names = list(info.get("names") or [])
    found = _Findings()
    if not names:
        found.error("class_names_missing", "dataset.json lists no class names")
    samples = detection_samples(root)
    if not samples:
        found.error("no_images", "the dataset holds no images")
    instances: Counter[int] = Counter()
    by_hash: dict[str, list[str]] = defaultdict(list)
    widths, heights = [], []
    empty = 0
    per_split: Counter[str] = Counter()
    for sample in samples:
        rel = str(sample.image.relative_to(root))
        per_split[sample.split or "all"] += 1
        by_hash[_sha256(sample.image)].append(rel)
        size = _decoded_size(sample.image, rel, policy, found)
        if size is _TOO_LARGE:
            continue
        if size is not None:
            widths.append(size[0])
            heights.append(size[1])
        label_rel = str(sample.label.relative_to(root))
        if not sample.label.is_file():
            found.error("missing_label", "no label file for this image", label_rel)
            continue
        boxes = _check_label_file(sample.label, label_rel, len(names), policy, found)
        if boxes is None:
            continue
        if not boxes:
            empty += 1
            found.warning("empty_image", "the image has no labelled object", label_rel)
        instances.update(boxes)

    for rel_paths in by_hash.values():
        if len(rel_paths) > 1:
            message = f"identical content in {len(rel_paths)} files: {', '.join(rel_paths[:5])}"
            found.by_policy(policy, "duplicate_image", message, rel_paths[0])

    expected_labels = {sample.label.resolve() for sample in samples}
    labels_dir = root / "labels"
    if labels_dir.is_dir():
        for label in sorted(labels_dir.rglob("*.txt")):
            if label.resolve() not in expected_labels:
                found.warning("orphan_label", "label file without an image", str(label.relative_to(root)))

    _check_balance(
        {names[i] if i < len(names) else str(i): instances.get(i, 0) for i in range(len(names))}, policy, found
    )
    stats = {
        "images": len(samples),
        "boxes": sum(instances.values()),
        "empty_images": empty,
        "classes": {name: instances.get(i, 0) for i, name in enumerate(names)},
        "splits": dict(per_split),
        "width": _range(widths),
        "height": _range(heights),
    }
    return ValidationReport("detection", tuple(found.errors), tuple(found.warnings), stats)


def _check_label_file(
    path: Path, rel: str, n_classes: int, policy: ValidationPolicy, found: _Findings
) -> list[int] | None:
    """The class ids of the file's boxes, or None when the file is unusable; findings recorded."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        found.error("malformed_label", f"unreadable label file: {exc}", rel)
        return None
    classes = []
    tol = policy.box_tolerance
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{rel}:{number}"
        if len(fields) != 5:
            found.error("malformed_label", f"expected 'class cx cy w h', got {len(fields)} fields", where)
            continue
        try:
            values = [float(value) for value in fields]
        except ValueError:
            found.error("malformed_label", f"non-numeric value in {line.strip()!r}", where)
            continue
        cls, cx, cy, w, h = values
        if not all(math.isfinite(v) for v in values) or cls != int(cls):
            found.error("malformed_label", f"class id must be an integer and values finite: {line.strip()!r}", where)
            continue
        cls = int(cls)
        if not 0 <= cls < n_classes:
            found.error("class_out_of_range", f"class id {cls} is outside 0..{n_classes - 1}", where)
            continue
        if w <= 0 or h <= 0:
            found.error("malformed_label", f"box width and height must be positive: {line.strip()!r}", where)
            continue
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if min(x0, y0, cx, cy) < -tol or max(x1, y1, cx, cy) > 1 + tol:
            found.error("box_outside_image", f"box ({x0:.3f}, {y0:.3f}, {x1:.3f}, {y1:.3f}) leaves [0, 1]", where)
            continue
        classes.append(cls)
    return classes


def _check_balance(counts: dict[str, int], policy: ValidationPolicy, found: _Findings) -> None:
    if not counts:
        return
    absent = [name for name, count in counts.items() if count == 0]
    for name in absent:
        found.warning("class_without_examples", f"class {name!r} has no examples")
    present = {name: count for name, count in counts.items() if count > 0}
    if len(present) >= 2:
        most = max(present, key=present.get)
        least = min(present, key=present.get)
        ratio = present[most] / present[least]
        if ratio > policy.imbalance_ratio:
            found.warning(
                "class_imbalance",
                f"{most!r} has {present[most]} examples, {least!r} {present[least]}: ratio {ratio:.1f} "
                f"above {policy.imbalance_ratio:g}",
            )


# -- classification ---------------------------------------------------------------------------


def _validate_classification(root: Path, info: dict, policy: ValidationPolicy) -> ValidationReport:
    names = list(info.get("names") or [])
    split_layout = is_split_layout(info)
    found = _Findings()
    _check_class_names(names, found)
    samples = classification_samples(root)
    if not samples:
        found.error("no_images", "the dataset holds no images in class folders")
    _check_stray_files(root, samples, split_layout, found)

    counts: Counter[str] = Counter()
    per_split: dict[str, Counter[str]] = defaultdict(Counter)
    by_hash: dict[str, list] = defaultdict(list)
    widths, heights = [], []
    unknown: set[str] = set()
    for sample in samples:
        rel = sample.image.relative_to(root).as_posix()
        if sample.class_name not in names:
            unknown.add(sample.class_name)
            continue
        counts[sample.class_name] += 1
        per_split[sample.split or "all"][sample.class_name] += 1
        by_hash[_sha256(sample.image)].append((rel, sample))
        size = _decoded_size(sample.image, rel, policy, found)
        if size is not None and size is not _TOO_LARGE:
            widths.append(size[0])
            heights.append(size[1])
    for name in sorted(unknown):
        found.error("unknown_class", f"folder {name!r} is not one of the classes {names}", name)

    for copies in by_hash.values():
        if len(copies) > 1:
            _check_duplicates(copies, policy, found)
    for name in names:
        if counts.get(name, 0) < policy.min_class_images:
            found.error(
                "too_few_images",
                f"class {name!r} has {counts.get(name, 0)} images, fewer than {policy.min_class_images}",
                name,
            )
    _check_balance({name: counts.get(name, 0) for name in names}, policy, found)
    if split_layout and per_split:
        for name in names:
            if counts.get(name) and not per_split["train"].get(name):
                found.error("class_not_trained", f"class {name!r} has no training image", name)
    stats = {
        "images": sum(counts.values()),
        "classes": {name: counts.get(name, 0) for name in names},
        "splits": {split: sum(c.values()) for split, c in sorted(per_split.items())},
        "width": _range(widths),
        "height": _range(heights),
    }
    if split_layout:
        stats["split_classes"] = {split: dict(sorted(c.items())) for split, c in sorted(per_split.items())}
    return ValidationReport("classification", tuple(found.errors), tuple(found.warnings), stats)


def _check_class_names(names: list[str], found: _Findings) -> None:
    if len(names) < 2:
        found.error("single_class", f"dataset.json lists {len(names)} class(es); a classifier needs at least two")
    if len(set(names)) != len(names):
        found.error("duplicate_class_names", f"dataset.json lists a class twice: {names}")
    if names != sorted(names):
        # Ultralytics numbers the classes of a classify dataset by their sorted folder names.
        found.error("class_names_unsorted", f"class names must be in sorted order, got {names}")
    bad = [name for name in names if not name or name.startswith(".") or "/" in name or "\\" in name]
    for name in bad:
        found.error("bad_class_name", f"class name {name!r} cannot be a folder name", name or None)


def _layout_file(path: Path) -> bool:
    """Our files beside the class folders, Ultralytics' <split>.cache files, or an image (a stray_image already)."""
    return (
        path.name in (DATASET_FILE, MANIFEST_FILE, VALIDATION_REPORT_FILE) or path.suffix == ".cache" or is_image(path)
    )


def _check_stray_files(root: Path, samples: list, split_layout: bool, found: _Findings) -> None:
    """Images outside a class folder are not trained on: say so rather than drop them silently."""
    placed = {sample.image for sample in samples}
    for image in sorted(p for p in root.rglob("*") if is_image(p) and p not in placed):
        where = "<split>/<class>/" if split_layout else "<class>/"
        found.warning("stray_image", f"not inside a {where} folder: ignored", image.relative_to(root).as_posix())
    expected = set(SPLITS) if split_layout else None
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and expected is not None and entry.name not in expected:
            found.warning("unknown_folder", f"{entry.name!r} is not a split folder: ignored", entry.name)
        elif entry.is_file() and not _layout_file(entry):
            found.warning("unknown_file", "not part of the layout: ignored", entry.name)


def _check_duplicates(copies: list, policy: ValidationPolicy, found: _Findings) -> None:
    """Findings for one group of byte-identical images: across classes, across splits, or plain copies."""
    files = [rel for rel, _ in copies]
    listed = ", ".join(files[:5])
    classes = sorted({sample.class_name for _, sample in copies})
    splits = sorted({sample.split for _, sample in copies if sample.split})
    if len(classes) > 1:
        found.error(
            "duplicate_across_classes", f"the same image is labelled {classes} ({len(files)} files: {listed})", files[0]
        )
    elif len(splits) > 1:
        found.by_policy(
            policy,
            "duplicate_across_splits",
            f"the same image is in the {' and '.join(splits)} splits ({listed}): the model is measured on what it saw",
            files[0],
        )
    else:
        found.by_policy(policy, "duplicate_image", f"identical content in {len(files)} files: {listed}", files[0])


# -- tabular ----------------------------------------------------------------------------------


def _validate_tabular(root: Path, info: dict, policy: ValidationPolicy) -> ValidationReport:
    import pandas as pd

    found = _Findings()
    target = info.get("target")
    class_names = list(info.get("class_names") or [])
    tables = [root / info["table"]] if info.get("table") else sorted(root.glob("*.parquet"))
    frames = []
    for table in tables:
        try:
            frames.append(pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table))
        except Exception as exc:  # noqa: BLE001  (any reader failure means the table is unusable)
            found.error("unreadable_table", f"cannot read: {type(exc).__name__}: {exc}", table.name)
    if not frames:
        if not found.errors:
            found.error("no_table", "the dataset holds no table")
        return ValidationReport("tabular", tuple(found.errors), tuple(found.warnings), {})
    frame = pd.concat(frames, ignore_index=True)
    if target not in frame.columns:
        found.error("target_missing", f"target column {target!r} is not in the table")
        return ValidationReport("tabular", tuple(found.errors), tuple(found.warnings), {"rows": len(frame)})
    features = [column for column in frame.columns if column != target]
    for column in features:
        if not (pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column])):
            found.error("non_numeric_feature", f"feature {column!r} has dtype {frame[column].dtype}", column)
        elif frame[column].nunique(dropna=True) <= 1:
            found.warning("constant_feature", f"feature {column!r} holds a single value", column)
    missing = {column: int(count) for column, count in frame[features].isna().sum().items() if count}
    if missing:
        found.warning("missing_values", f"missing values in {len(missing)} features: {sorted(missing)[:10]}")
    labels = frame[target]
    if labels.isna().any():
        found.error("target_missing_values", f"{int(labels.isna().sum())} rows have no target")
    valid = labels.dropna()
    out_of_range = valid[(valid < 0) | (valid >= max(len(class_names), 1)) | (valid != valid.round())]
    if class_names and len(out_of_range):
        found.error("class_out_of_range", f"{len(out_of_range)} target values outside 0..{len(class_names) - 1}")
    counts = {
        (class_names[int(value)] if 0 <= int(value) < len(class_names) else str(value)): int(count)
        for value, count in valid.value_counts().sort_index().items()
    }
    if len(counts) < 2:
        found.error("single_class", f"the target holds {len(counts)} class(es); at least two are needed")
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        found.warning("duplicate_rows", f"{duplicates} rows repeat an earlier row exactly")
    _check_balance({name: counts.get(name, 0) for name in class_names} or counts, policy, found)
    stats = {"rows": len(frame), "features": len(features), "classes": counts, "missing_values": missing}
    return ValidationReport("tabular", tuple(found.errors), tuple(found.warnings), stats)


# -- helpers ----------------------------------------------------------------------------------


_TOO_LARGE = (-1, -1)


def _decoded_size(path: Path, rel: str, policy: ValidationPolicy, found: _Findings) -> tuple[int, int] | None:
    """(width, height) of a fully decoded image; None when it does not decode, _TOO_LARGE above the pixel cap."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > policy.max_image_pixels:
                found.error("image_too_large", f"{width}x{height} exceeds {policy.max_image_pixels} pixels", rel)
                return _TOO_LARGE
            image.load()
        return width, height
    except Exception as exc:  # noqa: BLE001  (any decoder failure means the file is unusable)
        found.error("undecodable_image", f"cannot decode: {type(exc).__name__}: {exc}", rel)
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _range(values: list[int]) -> dict:
    return {"min": min(values), "max": max(values)} if values else {}
