"""The data a training job trains on: ingest -> validate -> prepare, once per source and options.

Defaults come from params.yaml, as for `dvc repro`: the `data.<kind>.options` of the same source,
the `validate` policy and the `prepare` split; a job's own "data", "validate" and "split" params
override them key by key. So a job on the default source trains on the pipeline's data version.

The kind of model the job trains says what the data must become: one folder per class is a
classification set for a classifier and a detection set (one box per image) for a detector, and a
source or prepared dataset of another kind is refused (code kind_mismatch) before anything trains.

A prepared dataset lives in TRAINING_DATA_DIR under a name derived from the source, the kind and
the data options, so a second job with the same spec reuses it (no second download, same data version).
It is built in a private folder and renamed into place, so two jobs preparing the same spec at
once never see half a dataset: the second rename loses and its copy is dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from mlops.data.ingest import ingest
from mlops.data.layout import MANIFEST_FILE
from mlops.data.prepare import PreparedDataset, SplitSpec, load_prepared, prepare_dataset
from mlops.data.validate import ValidationPolicy, validate_dataset
from mlops.training.params import load_params_file

logger = logging.getLogger(__name__)

StageCallback = Callable[[str], None]


def dataset_key(source: str, options: dict, kind: str | None = None) -> str:
    """A folder name for `source` prepared as `kind` with `options`: readable prefix, content-derived suffix."""
    spec = {"source": source, **options, **({"kind": kind} if kind else {})}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:60] or "dataset"
    return f"{slug}-{digest[:12]}"


def prepared_dataset(
    source: str,
    data_dir: Path,
    *,
    kind: str | None = None,
    ingest_options: dict | None = None,
    split: dict | None = None,
    validation: dict | None = None,
    on_stage: StageCallback | None = None,
) -> PreparedDataset:
    """The prepared dataset for `source` (built now unless an identical one is there already).

    `source` is an ingest source (mlops.data.ingest) or the folder of a prepared dataset; `kind`
    ("detection", "classification", "tabular") is what it must be, None lets the source decide;
    `ingest_options` go to the ingest, `split` to SplitSpec, `validation` to ValidationPolicy.
    """
    path = Path(source)
    if (path / MANIFEST_FILE).is_file():
        logger.info("training.dataset_given path=%s kind=%s", path, kind)
        return load_prepared(path, kind=kind)
    if ":" not in source and path.is_dir():
        source = f"folder:{path.resolve()}"
    defaults = pipeline_defaults(source, kind=kind)
    options = {**defaults["ingest"], **(ingest_options or {})}
    spec = SplitSpec.from_mapping({**defaults["split"], **(split or {})})
    policy = ValidationPolicy.from_mapping({**defaults["validate"], **(validation or {})})
    key = dataset_key(source, {"ingest": options, "split": asdict(spec)}, kind=kind)
    final = Path(data_dir) / key
    if (final / MANIFEST_FILE).is_file():
        logger.info("training.dataset_reused source=%s kind=%s path=%s", source, kind, final)
        return load_prepared(final, kind=kind)
    _build(source, final, kind=kind, options=options, spec=spec, policy=policy, on_stage=on_stage)
    logger.info("training.dataset_prepared source=%s kind=%s path=%s", source, kind, final)
    return load_prepared(final, kind=kind)


def _build(
    source: str,
    final: Path,
    *,
    kind: str | None,
    options: dict,
    spec: SplitSpec,
    policy: ValidationPolicy,
    on_stage: StageCallback | None,
) -> None:
    """Ingest `source` as `kind`, validate and prepare it in a private folder beside `final`, then rename it there.

    Validation and the split follow the kind the ingest wrote into the raw dataset (its dataset.json).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        _stage(on_stage, "ingesting data")
        ingest(source, work / "raw", options=options, kind=kind)
        _stage(on_stage, "validating data")
        report = work / "validation_report.json"
        validate_dataset(work / "raw", policy=policy, report_path=report)
        _stage(on_stage, "preparing data")
        prepare_dataset(work / "raw", work / "prepared", spec, validation_report=report)
        try:
            os.rename(work / "prepared", final)
        except OSError:
            if not (final / MANIFEST_FILE).is_file():
                raise
            logger.info("training.dataset_prepared_concurrently path=%s", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pipeline_defaults(source: str, *, kind: str | None = None) -> dict[str, dict]:
    """params.yaml's ingest options for `source` (when it is a pipeline source), validation and split.

    The options are those of the `data.<kind>` section when its source is `source` (a folder two
    kinds read takes each kind's own options), else of the first section with that source.
    """
    params = load_params_file()
    sections = {name: section for name, section in (params.get("data") or {}).items() if isinstance(section, dict)}
    matching = [name for name, section in sections.items() if section.get("source") == source]
    ingest_options: dict = {}
    if matching:
        chosen = kind if kind in matching else matching[0]
        ingest_options = dict(sections[chosen].get("options") or {})
    return {
        "ingest": ingest_options,
        "split": dict(params.get("prepare") or {}),
        "validate": dict(params.get("validate") or {}),
    }


def _stage(on_stage: StageCallback | None, stage: str) -> None:
    if on_stage is not None:
        on_stage(stage)
