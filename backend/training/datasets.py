"""The data a training job trains on: ingest -> validate -> prepare, once per source and options.

Defaults come from params.yaml, as for `dvc repro`: the `data.<kind>.options` of the same source,
the `validate` policy and the `prepare` split; a job's own "data", "validate" and "split" params
override them key by key. So a job on the default source trains on the pipeline's data version.

A prepared dataset lives in TRAINING_DATA_DIR under a name derived from the source and the data
options, so a second job with the same spec reuses it (no second download, same data version).
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


def dataset_key(source: str, options: dict) -> str:
    """A folder name for `source` prepared with `options`: readable prefix, content-derived suffix."""
    digest = hashlib.sha256(json.dumps({"source": source, **options}, sort_keys=True).encode()).hexdigest()
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:60] or "dataset"
    return f"{slug}-{digest[:12]}"


def prepared_dataset(
    source: str,
    data_dir: Path,
    *,
    ingest_options: dict | None = None,
    split: dict | None = None,
    validation: dict | None = None,
    on_stage: StageCallback | None = None,
) -> PreparedDataset:
    """The prepared dataset for `source` (built now unless an identical one is there already).

    `source` is an ingest source (mlops.data.ingest) or the folder of a prepared dataset;
    `ingest_options` go to the ingest, `split` to SplitSpec, `validation` to ValidationPolicy.
    """
    path = Path(source)
    if (path / MANIFEST_FILE).is_file():
        logger.info("training.dataset_given path=%s", path)
        return load_prepared(path)
    if ":" not in source and path.is_dir():
        source = f"folder:{path.resolve()}"
    defaults = pipeline_defaults(source)
    options = {**defaults["ingest"], **(ingest_options or {})}
    spec = SplitSpec.from_mapping({**defaults["split"], **(split or {})})
    policy = ValidationPolicy.from_mapping({**defaults["validate"], **(validation or {})})
    key = dataset_key(source, {"ingest": options, "split": asdict(spec)})
    final = Path(data_dir) / key
    if (final / MANIFEST_FILE).is_file():
        logger.info("training.dataset_reused source=%s path=%s", source, final)
        return load_prepared(final)
    _build(source, final, options=options, spec=spec, policy=policy, on_stage=on_stage)
    logger.info("training.dataset_prepared source=%s path=%s", source, final)
    return load_prepared(final)


def _build(
    source: str,
    final: Path,
    *,
    options: dict,
    spec: SplitSpec,
    policy: ValidationPolicy,
    on_stage: StageCallback | None,
) -> None:
    """Ingest, validate and prepare `source` in a private folder beside `final`, then rename it there."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        _stage(on_stage, "ingesting data")
        ingest(source, work / "raw", options=options)
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


def pipeline_defaults(source: str) -> dict[str, dict]:
    """params.yaml's ingest options for `source` (when it is a pipeline source), validation and split."""
    params = load_params_file()
    ingest_options: dict = {}
    for section in (params.get("data") or {}).values():
        if isinstance(section, dict) and section.get("source") == source:
            ingest_options = dict(section.get("options") or {})
            break
    return {
        "ingest": ingest_options,
        "split": dict(params.get("prepare") or {}),
        "validate": dict(params.get("validate") or {}),
    }


def _stage(on_stage: StageCallback | None, stage: str) -> None:
    if on_stage is not None:
        on_stage(stage)
