"""Split a raw dataset into train/val/test and give it a content hash: the data version.

The split is a pure function of the item names and the seed (items sorted by a seeded hash of
their name, then cut at the ratios), so re-running gives the same split and adding items moves
few of the old ones. Classification and tabular sets are split per class (stratified), so every
split keeps the class mix of the whole. The data version hashes every file's content together
with its split, so the same bytes in the same splits always carry the same version, wherever
they came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mlops.data.layout import (
    DATA_YAML,
    FEATURE_SCHEMA_FILE,
    MANIFEST_FILE,
    SPLITS,
    VALIDATION_REPORT_FILE,
    classification_samples,
    detection_samples,
    link_or_copy,
    read_dataset_info,
    reset_dir,
    write_dataset_info,
)
from mlops.exceptions import InvalidInput, NotFound
from mlops.registry.artifacts import sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSpec:
    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise InvalidInput("split ratios must be in [0, 1) and leave room for training", code="bad_params")

    @classmethod
    def from_mapping(cls, values: dict | None) -> SplitSpec:
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"unknown prepare parameters {unknown}", code="bad_params")
        return cls(**values)


@dataclass(frozen=True)
class PreparedDataset:
    """A split dataset ready for training; `data_version` goes on every model trained from it."""

    path: Path
    kind: str
    data_version: str
    class_names: tuple[str, ...]
    counts: dict[str, int]  # items per split
    manifest_path: Path
    data_yaml: Path | None = None  # detection: what Ultralytics reads
    target: str | None = None  # tabular: the label column
    feature_schema: tuple[dict, ...] = field(default=())
    validation_report: Path | None = None  # the report of the raw data, carried along
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # classification: split -> class -> images

    def split_table(self, split: str) -> Path:
        return self.path / f"{split}.parquet"

    def split_dir(self, split: str) -> Path:
        """Classification: the folder of one split, one subfolder per class."""
        return self.path / split

    @property
    def ultralytics_data(self) -> str:
        """What Ultralytics' `data=` takes: data.yaml for detection, the dataset folder for classification."""
        if self.kind == "detection" and self.data_yaml is not None:
            return str(self.data_yaml)
        if self.kind == "classification":
            return str(self.path)
        raise InvalidInput(f"a {self.kind} dataset is not an Ultralytics dataset", code="kind_mismatch")


def prepare_dataset(
    raw_dir: Path | str,
    out_dir: Path | str,
    spec: SplitSpec | None = None,
    *,
    validation_report: Path | str | None = None,
) -> PreparedDataset:
    """Split the raw dataset in `raw_dir` into `out_dir` (replaced) and write its manifest.

    `validation_report` (the raw data's, from mlops.data.validate) is copied along so that the
    models trained on this dataset can carry it.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    spec = spec or SplitSpec()
    info = read_dataset_info(raw_dir)
    if info.get("kind") == "tabular":
        _prepare_tabular(raw_dir, out_dir, info, spec)
    elif info.get("kind") == "classification":
        _prepare_classification(raw_dir, out_dir, info, spec)
    else:
        _prepare_detection(raw_dir, out_dir, info, spec)
    if validation_report is not None:
        shutil.copyfile(validation_report, out_dir / VALIDATION_REPORT_FILE)
    return load_prepared(out_dir)


def load_prepared(path: Path | str, *, kind: str | None = None) -> PreparedDataset:
    """The PreparedDataset behind a folder written by prepare_dataset; refused unless of `kind` when given."""
    data = _read_prepared(Path(path))
    if kind is not None and data.kind != kind:
        raise InvalidInput(f"{path} is a {data.kind} dataset, not a {kind} one", code="kind_mismatch")
    return data


def _read_prepared(path: Path) -> PreparedDataset:
    """The dataset its manifest describes, with the paths of the files beside it."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise NotFound(
            f"{path} is not a prepared dataset ({MANIFEST_FILE} missing); run prepare", code="dataset_missing"
        )
    manifest = json.loads(manifest_path.read_text())
    schema = ()
    if manifest["kind"] == "tabular":
        schema = tuple(json.loads((path / FEATURE_SCHEMA_FILE).read_text()))
    return PreparedDataset(
        path=path.resolve(),
        kind=manifest["kind"],
        data_version=manifest["data_version"],
        class_names=tuple(manifest["class_names"]),
        counts=dict(manifest["counts"]),
        manifest_path=manifest_path.resolve(),
        data_yaml=(path / DATA_YAML).resolve() if manifest["kind"] == "detection" else None,
        target=manifest.get("target"),
        feature_schema=schema,
        validation_report=(path / VALIDATION_REPORT_FILE).resolve()
        if (path / VALIDATION_REPORT_FILE).is_file()
        else None,
        class_counts=dict(manifest.get("class_counts") or {}),
    )


def split_assignment(keys: list[str], spec: SplitSpec) -> dict[str, str]:
    """key -> split. Each split gets at least one item when there are enough items to go round."""
    ordered = sorted(keys, key=lambda key: hashlib.sha256(f"{spec.seed}:{key}".encode()).hexdigest())
    n = len(ordered)
    n_test = _share(n, spec.test)
    n_val = _share(n, spec.val)
    while n_test + n_val >= n and n_test + n_val > 0:  # training keeps at least one item
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    assignment = {}
    for index, key in enumerate(ordered):
        assignment[key] = "test" if index < n_test else "val" if index < n_test + n_val else "train"
    return assignment


def _share(n: int, ratio: float) -> int:
    if ratio <= 0 or n == 0:
        return 0
    return max(1, round(n * ratio))


# -- detection --------------------------------------------------------------------------------


def _prepare_detection(raw_dir: Path, out_dir: Path, info: dict, spec: SplitSpec) -> None:
    import yaml

    names = list(info.get("names") or [])
    samples = [sample for sample in detection_samples(raw_dir) if sample.label.is_file()]
    if not samples:
        raise InvalidInput(f"{raw_dir} holds no labelled images", code="dataset_empty")
    assignment = split_assignment([sample.image.name for sample in samples], spec)
    out_dir = reset_dir(out_dir)
    files = []
    counts = dict.fromkeys(SPLITS, 0)
    for sample in samples:
        split = assignment[sample.image.name]
        counts[split] += 1
        image_target = out_dir / "images" / split / sample.image.name
        label_target = out_dir / "labels" / split / f"{sample.image.stem}.txt"
        link_or_copy(sample.image, image_target)
        link_or_copy(sample.label, label_target)
        for target in (image_target, label_target):
            files.append(
                {"path": target.relative_to(out_dir).as_posix(), "sha256": sha256_file(target), "split": split}
            )
    files.sort(key=lambda entry: entry["path"])
    # No `path:` key: Ultralytics then resolves the splits against this file's folder, so the
    # dataset works from any working directory and after being moved or checked out elsewhere.
    data_yaml = out_dir / DATA_YAML
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "train": "images/train",
                "val": "images/val",
                "test": "images/test",
                "nc": len(names),
                "names": dict(enumerate(names)),
            },
            sort_keys=False,
        )
    )
    version = _content_hash(
        {"kind": "detection", "class_names": names, "files": [[f["path"], f["sha256"]] for f in files]}
    )
    write_dataset_info(out_dir, {**info, "split": _spec_dict(spec)})
    _write_manifest(out_dir, info, spec, counts, files, kind="detection", data_version=version, class_names=names)


# -- classification ---------------------------------------------------------------------------


def _prepare_classification(raw_dir: Path, out_dir: Path, info: dict, spec: SplitSpec) -> None:
    """`<out>/<split>/<class>/<image>` (Ultralytics' classify layout), split class by class."""
    names = list(info.get("names") or [])
    by_class: dict[str, list] = {name: [] for name in names}
    for sample in classification_samples(raw_dir):
        if sample.class_name in by_class:
            by_class[sample.class_name].append(sample)
    if not any(by_class.values()):
        raise InvalidInput(f"{raw_dir} holds no images in class folders", code="dataset_empty")
    untrainable = [name for name, samples in by_class.items() if not samples]
    if untrainable:
        raise InvalidInput(f"classes {untrainable} have no images: nothing to train them on", code="dataset_empty")
    out_dir = reset_dir(out_dir)
    files = []
    counts = dict.fromkeys(SPLITS, 0)
    class_counts = {split: dict.fromkeys(names, 0) for split in SPLITS}
    for name, samples in by_class.items():
        assignment = split_assignment([sample.image.name for sample in samples], spec)
        for sample in samples:
            split = assignment[sample.image.name]
            target = out_dir / split / name / sample.image.name
            link_or_copy(sample.image, target)
            counts[split] += 1
            class_counts[split][name] += 1
            files.append(
                {"path": target.relative_to(out_dir).as_posix(), "sha256": sha256_file(target), "split": split}
            )
    files.sort(key=lambda entry: entry["path"])
    version = _content_hash(
        {"kind": "classification", "class_names": names, "files": [[f["path"], f["sha256"]] for f in files]}
    )
    write_dataset_info(out_dir, {**info, "split": _spec_dict(spec)})
    _write_manifest(
        out_dir,
        info,
        spec,
        counts,
        files,
        kind="classification",
        data_version=version,
        class_names=names,
        class_counts=class_counts,
    )


# -- tabular ----------------------------------------------------------------------------------


def _prepare_tabular(raw_dir: Path, out_dir: Path, info: dict, spec: SplitSpec) -> None:
    import pandas as pd

    table = raw_dir / info["table"]
    frame = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    target = info["target"]
    if target not in frame.columns:
        raise InvalidInput(f"target column {target!r} is not in {table.name}", code="target_missing")
    frame = frame.reset_index(drop=True)
    splits = _stratified_split(frame, target, spec)
    out_dir = reset_dir(out_dir)
    files, content = [], []
    counts = {}
    for split in SPLITS:
        part = splits[split]
        counts[split] = len(part)
        path = out_dir / f"{split}.parquet"
        part.to_parquet(path, index=False)
        files.append({"path": path.name, "sha256": sha256_file(path), "split": split})
        content.append([split, _frame_digest(part)])
    schema = feature_schema(splits["train"].drop(columns=[target]))
    schema_path = out_dir / FEATURE_SCHEMA_FILE
    schema_path.write_text(json.dumps(schema, indent=2) + "\n")
    files.append({"path": schema_path.name, "sha256": sha256_file(schema_path), "split": None})
    class_names = list(info.get("class_names") or [])
    version = _content_hash({"kind": "tabular", "class_names": class_names, "target": target, "splits": content})
    write_dataset_info(out_dir, {**info, "table": None, "split": _spec_dict(spec)})
    _write_manifest(
        out_dir, info, spec, counts, files, kind="tabular", data_version=version, class_names=class_names, target=target
    )


def _stratified_split(frame, target: str, spec: SplitSpec) -> dict:
    from sklearn.model_selection import train_test_split

    def cut(part, ratio: float, seed: int):
        if ratio <= 0 or len(part) < 2:
            return part, part.iloc[0:0]
        size = max(1, round(len(part) * ratio))
        stratify = part[target] if part[target].value_counts().min() >= 2 else None
        try:
            return train_test_split(part, test_size=size, random_state=seed, stratify=stratify)
        except ValueError:  # too few rows per class for a stratified cut of that size
            return train_test_split(part, test_size=size, random_state=seed)

    rest, test = cut(frame, spec.test, spec.seed)
    val_ratio = spec.val / (1 - spec.test) if spec.test < 1 else 0
    train, val = cut(rest, val_ratio, spec.seed + 1)
    # Row order inside a split follows the original table, not the shuffle.
    return {
        name: part.sort_index().reset_index(drop=True)
        for name, part in (("train", train), ("val", val), ("test", test))
    }


def feature_schema(features) -> list[dict]:
    """The shared feature-schema format: name, dtype (float|int), and min/max/mean of the split."""
    import pandas as pd

    schema = []
    for name in features.columns:
        column = features[name]
        is_int = pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column)
        values = column.astype("float64")
        schema.append(
            {
                "name": str(name),
                "dtype": "int" if is_int else "float",
                "min": _json_float(values.min()),
                "max": _json_float(values.max()),
                "mean": _json_float(values.mean()),
            }
        )
    return schema


def _json_float(value) -> float | None:
    value = float(value)
    return value if value == value else None  # NaN (an empty split) is not JSON


def _frame_digest(frame) -> str:
    """A digest of the table's values and columns, independent of the file format's bytes."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _write_manifest(out_dir: Path, info: dict, spec: SplitSpec, counts: dict, files: list, **fields) -> None:
    """The manifest load_prepared reads: kind, data version, source, split, counts and every file's sha256."""
    manifest = {"source": info.get("source"), "split": _spec_dict(spec), "counts": counts, "files": files, **fields}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    logger.info(
        "data.prepared kind=%s dest=%s version=%s counts=%s",
        fields["kind"],
        out_dir,
        fields["data_version"][:12],
        counts,
    )


def _content_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _spec_dict(spec: SplitSpec) -> dict:
    return {"val": spec.val, "test": spec.test, "seed": spec.seed}
