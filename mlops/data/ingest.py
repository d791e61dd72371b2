"""Bring a dataset into data/raw/NAME in our layout, from Kaggle, a local folder or a generator.

Sources::

    synthetic:shapes          coloured shapes on varied backgrounds (options: ShapesSpec fields)
    synthetic:classification  one shape per image, classed by its shape (options: ClassificationSpec fields)
    synthetic:tabular         a table with a known signal (options: TabularSpec fields)
    sklearn:breast_cancer     scikit-learn's bundled table
    kaggle:OWNER/DATASET      kagglehub download, then converted (options: target=... for tables)
    folder:/some/path         a local folder, converted like a Kaggle download

`kind` says what the caller wants the data to become; left out, the source decides. Image folders
are converted in two layouts: YOLO folders (`images/` + `labels/`, flat or split) become detection
sets, and one folder per class becomes a classification set when kind is "classification", else
a detection set (each image one box covering it). A single CSV/parquet file becomes a tabular
dataset. Kaggle without credentials or network fails within seconds with OfflineError.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlops.data.layout import (
    TABLE_SUFFIXES,
    is_image,
    label_path_for,
    link_or_copy,
    reset_dir,
    write_dataset_info,
)
from mlops.data.network import probe_http
from mlops.data.synthetic import (
    TABLE_FILE,
    ClassificationSpec,
    ShapesSpec,
    TabularSpec,
    generate_classification,
    generate_shapes,
    generate_tabular,
    load_breast_cancer_table,
)
from mlops.exceptions import InvalidInput, NotFound, OfflineError

logger = logging.getLogger(__name__)

KAGGLE_PROBE_TIMEOUT = 3.0
KINDS = ("detection", "classification", "tabular")
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
_NAME_FILES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml", "classes.txt", "obj.names", "classes.names")


@dataclass(frozen=True)
class IngestResult:
    """What landed in `path`: an image set (items = images) or a table (items = rows)."""

    source: str
    path: Path
    kind: str
    items: int
    class_names: tuple[str, ...] = ()


def ingest(source: str, dest: Path | str, *, options: dict | None = None, kind: str | None = None) -> IngestResult:
    """Fetch or generate `source` into `dest` (replaced), in the raw layout of mlops.data.layout.

    `kind` ("detection", "classification" or "tabular") is what the dataset must become; a source
    that cannot become it is refused (InvalidInput, code kind_mismatch) before anything is written.
    """
    dest = Path(dest)
    options = dict(options or {})
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"unknown dataset kind {kind!r}; use one of {list(KINDS)}", code="bad_kind")
    scheme, _, rest = source.partition(":")
    if scheme == "synthetic" and rest == "shapes":
        _expect(kind, "detection", source)
        spec = ShapesSpec.from_mapping(options)
        generate_shapes(dest, spec)
        return IngestResult(source, dest, "detection", spec.count, spec.classes)
    if scheme == "synthetic" and rest == "classification":
        _expect(kind, "classification", source)
        spec = ClassificationSpec.from_mapping(options)
        generate_classification(dest, spec)
        return IngestResult(source, dest, "classification", spec.count, spec.classes)
    if scheme == "synthetic" and rest == "tabular":
        _expect(kind, "tabular", source)
        spec = TabularSpec.from_mapping(options)
        generate_tabular(dest, spec)
        return IngestResult(source, dest, "tabular", spec.rows, ("negative", "positive"))
    if scheme == "sklearn" and rest == "breast_cancer":
        _expect(kind, "tabular", source)
        load_breast_cancer_table(dest)
        return IngestResult(source, dest, "tabular", 569, ("malignant", "benign"))
    if scheme == "kaggle" and rest:
        return _ingest_kaggle(source, rest, dest, options, kind)
    if scheme == "folder" and rest:
        folder = Path(rest)
        if not folder.is_dir():
            raise NotFound(f"folder {folder} does not exist", code="source_missing")
        return convert_folder(folder, dest, source=source, target=options.get("target"), kind=kind)
    raise InvalidInput(
        f"unknown data source {source!r}: use synthetic:shapes, synthetic:classification, synthetic:tabular, "
        "sklearn:breast_cancer, kaggle:OWNER/DATASET or folder:PATH",
        code="bad_source",
    )


def _expect(wanted: str | None, given: str, source: str) -> None:
    if wanted is not None and wanted != given:
        raise InvalidInput(f"{source} is a {given} dataset, not a {wanted} one", code="kind_mismatch")


# -- Kaggle -----------------------------------------------------------------------------------


def kaggle_readiness(timeout: float = KAGGLE_PROBE_TIMEOUT) -> None:
    """Raise OfflineError naming what is missing (credentials, network) before any download."""
    from kagglehub.config import get_kaggle_credentials
    from kagglesdk.kaggle_env import get_endpoint, get_env

    try:
        credentials = get_kaggle_credentials()
    except ValueError as exc:  # a malformed ~/.kaggle/kaggle.json
        raise OfflineError(f"Kaggle credentials are unreadable: {exc}", code="kaggle_credentials_invalid") from exc
    if credentials is None:
        raise OfflineError(
            "Kaggle credentials are missing: set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), "
            "or put kaggle.json in ~/.kaggle (KAGGLE_CONFIG_DIR)",
            code="kaggle_credentials_missing",
        )
    endpoint = get_endpoint(get_env())
    problem = probe_http(endpoint, timeout=timeout)
    if problem is not None:
        raise OfflineError(
            f"Kaggle is not reachable at {endpoint} ({problem}): no network, or a proxy/firewall blocks it",
            code="kaggle_unreachable",
            details={"endpoint": endpoint},
        )


def _ingest_kaggle(source: str, handle: str, dest: Path, options: dict, kind: str | None) -> IngestResult:
    import kagglehub
    import requests
    from kagglehub.exceptions import KaggleApiHTTPError

    try:
        from kagglehub.handle import parse_dataset_handle

        parse_dataset_handle(handle)
    except ValueError as exc:
        raise InvalidInput(f"bad Kaggle dataset handle {handle!r}: {exc}", code="bad_source") from exc
    kaggle_readiness(timeout=float(options.pop("timeout", KAGGLE_PROBE_TIMEOUT)))

    staging = dest.parent / f".{dest.name}.download"
    reset_dir(staging)
    try:
        logger.info("data.kaggle_download_started handle=%s", handle)
        try:
            downloaded = Path(kagglehub.dataset_download(handle, output_dir=str(staging), force_download=True))
        except KaggleApiHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise OfflineError(f"Kaggle refused the credentials for {handle}: {exc}", code="kaggle_denied") from exc
            if status == 404:
                raise NotFound(f"Kaggle has no dataset {handle}", code="source_missing") from exc
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise OfflineError(
                f"Kaggle download of {handle} lost the network: {exc}", code="kaggle_unreachable"
            ) from exc
        logger.info("data.kaggle_downloaded handle=%s path=%s", handle, downloaded)
        return convert_folder(downloaded, dest, source=source, target=options.get("target"), kind=kind)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- layout conversion ------------------------------------------------------------------------


def convert_folder(
    folder: Path, dest: Path, *, source: str, target: str | None = None, kind: str | None = None
) -> IngestResult:
    """Recognise the folder's layout (YOLO, one folder per class, a table) and convert it into `kind`.

    Without `kind`, images become a detection set (YOLO labels, or one box per image of a class
    folder) and a table a tabular set.
    """
    folder = Path(folder)
    images = sorted(p for p in folder.rglob("*") if is_image(p))
    yolo = bool(images) and any("images" in p.relative_to(folder).parts[:-1] for p in images)
    if kind == "classification":
        if yolo:
            raise InvalidInput(
                f"{folder} is a YOLO detection layout (images/ + labels/), not one folder per class",
                code="kind_mismatch",
            )
        if not images:
            raise InvalidInput(f"{folder} holds no images to classify", code="unsupported_layout")
        return _convert_class_folders_for_classification(folder, images, dest, source)
    if kind in (None, "detection") and yolo:
        return _convert_yolo(folder, images, dest, source)
    if kind in (None, "detection") and images:
        return _convert_class_folders(folder, images, dest, source)
    tables = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
    if kind in (None, "tabular") and len(tables) >= 1:
        return _convert_table(folder, tables, dest, source, target)
    found = sorted({p.suffix.lower() or p.name for p in folder.rglob("*") if p.is_file()})[:20]
    wanted = {
        None: "images (YOLO or class folders) or one CSV/parquet table",
        "detection": "images (YOLO or class folders)",
        "tabular": "one CSV/parquet table",
    }[kind]
    raise InvalidInput(
        f"no supported layout in {folder}: expected {wanted}; found {found}",
        code="unsupported_layout",
    )


def _flat_name(relative: Path) -> str:
    """A collision-free file name from a path inside the source (the `images` folder dropped)."""
    parts = [SPLIT_FOLDERS.get(part.lower(), part) for part in relative.parts if part != "images"]
    return "__".join(parts)


def _convert_yolo(folder: Path, images: list[Path], dest: Path, source: str) -> IngestResult:
    names = _class_names(folder)
    dest = reset_dir(dest)
    missing = 0
    max_class = -1
    for image in images:
        if "images" not in image.relative_to(folder).parts[:-1]:
            continue  # stray pictures beside the dataset (a README preview, say)
        flat = _flat_name(image.relative_to(folder))
        link_or_copy(image, dest / "images" / flat)
        label = label_path_for(image)
        target = dest / "labels" / Path(flat).with_suffix(".txt")
        if label.is_file():
            link_or_copy(label, target)
            max_class = max(max_class, _max_class_id(label))
        else:
            # YOLO's convention: no label file means a background image; say so explicitly.
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
            missing += 1
    if names is None:
        names = [f"class{i}" for i in range(max_class + 1)]
        logger.warning("data.class_names_unknown source=%s guessed=%s", source, len(names))
    count = sum(1 for _ in (dest / "images").iterdir())
    write_dataset_info(dest, {"kind": "detection", "names": names, "source": source, "layout": "yolo"})
    logger.info("data.converted layout=yolo source=%s images=%s backgrounds=%s", source, count, missing)
    return IngestResult(source, dest, "detection", count, tuple(names))


def _convert_class_folders(folder: Path, images: list[Path], dest: Path, source: str) -> IngestResult:
    def class_of(image: Path) -> str:
        return image.parent.name

    classes = sorted({class_of(image) for image in images if image.parent != folder})
    if not classes:
        raise InvalidInput(
            f"{folder} holds images but neither YOLO labels nor class folders", code="unsupported_layout"
        )
    index = {name: i for i, name in enumerate(classes)}
    dest = reset_dir(dest)
    (dest / "labels").mkdir()
    count = 0
    for image in images:
        if image.parent == folder:
            continue
        flat = _flat_name(image.relative_to(folder))
        link_or_copy(image, dest / "images" / flat)
        target = dest / "labels" / Path(flat).with_suffix(".txt")
        target.write_text(f"{index[class_of(image)]} 0.5 0.5 1.0 1.0\n")
        count += 1
    write_dataset_info(dest, {"kind": "detection", "names": classes, "source": source, "layout": "class_folders"})
    logger.info("data.converted layout=class_folders source=%s images=%s classes=%s", source, count, len(classes))
    return IngestResult(source, dest, "detection", count, tuple(classes))


def _convert_class_folders_for_classification(
    folder: Path, images: list[Path], dest: Path, source: str
) -> IngestResult:
    """One folder per class, wherever it sits (`cat/1.jpg`, `train/cat/1.jpg`): `<dest>/<class>/<image>`.

    The folders above the class folder go into the file name (`train__1.jpg`), so images of the
    same name from two splits of the source stay apart.
    """
    samples = [image for image in images if image.parent != folder]
    classes = sorted({image.parent.name for image in samples})
    if not classes:
        raise InvalidInput(f"{folder} holds images but no class folders", code="unsupported_layout")
    clashing = sorted(name for name in classes if name.lower() in SPLIT_FOLDERS)
    if clashing and len(classes) == len(clashing):
        raise InvalidInput(
            f"{folder} holds split folders {clashing} with images directly inside: put each class in its own folder",
            code="unsupported_layout",
        )
    dest = reset_dir(dest)
    written: set[Path] = set()
    for image in samples:
        relative = image.relative_to(folder)
        target = dest / image.parent.name / _flat_name(Path(*relative.parts[:-2], relative.name))
        if target in written:
            # `valid/cat/1.jpg` and `val/cat/1.jpg` both become `cat/val__1.jpg`: keep the first.
            logger.warning("data.duplicate_name source=%s file=%s kept=first", source, relative)
            continue
        link_or_copy(image, target)
        written.add(target)
    write_dataset_info(dest, {"kind": "classification", "names": classes, "source": source, "layout": "class_folders"})
    logger.info(
        "data.converted layout=class_folders kind=classification source=%s images=%s classes=%s",
        source,
        len(written),
        len(classes),
    )
    return IngestResult(source, dest, "classification", len(written), tuple(classes))


def _convert_table(folder: Path, tables: list[Path], dest: Path, source: str, target: str | None) -> IngestResult:
    import pandas as pd

    table = max(tables, key=lambda p: p.stat().st_size)  # the data, not a sample submission
    frame = pd.read_parquet(table) if table.suffix.lower() == ".parquet" else pd.read_csv(table)
    if target is None:
        target = str(frame.columns[-1])
        logger.warning("data.target_guessed source=%s target=%s", source, target)
    if target not in frame.columns:
        raise InvalidInput(f"target column {target!r} is not in {table.name}", code="target_missing")
    classes = sorted(frame[target].dropna().unique().tolist())
    if all(isinstance(value, str) for value in classes):
        frame[target] = frame[target].map({name: i for i, name in enumerate(classes)})
        class_names = [str(name) for name in classes]
    else:
        frame[target] = frame[target].astype("int64")
        class_names = [str(value) for value in classes]
    dest = reset_dir(dest)
    frame.to_parquet(dest / TABLE_FILE, index=False)
    info = {"kind": "tabular", "source": source, "table": TABLE_FILE, "target": target, "class_names": class_names}
    write_dataset_info(dest, info)
    logger.info("data.converted layout=table source=%s file=%s rows=%s", source, table.name, len(frame))
    return IngestResult(source, dest, "tabular", len(frame), tuple(class_names))


def _class_names(folder: Path) -> list[str] | None:
    import yaml

    for candidate in sorted(folder.rglob("*"), key=lambda p: (len(p.parts), str(p))):
        if candidate.name not in _NAME_FILES or not candidate.is_file():
            continue
        if candidate.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(candidate.read_text()) or {}
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict):
                return [str(names[key]) for key in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(name) for name in names]
        else:
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    return None


def _max_class_id(label: Path) -> int:
    highest = -1
    for line in label.read_text().splitlines():
        fields = line.split()
        if fields:
            try:
                highest = max(highest, int(float(fields[0])))
            except ValueError:
                continue  # validation reports malformed lines
    return highest
