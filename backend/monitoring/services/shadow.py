"""Shadow mode: a model's staging version answers a sample of logged predictions again, off the request path.

Detection, classification and scoring send `prediction_logged` once a prediction is in the log.
On the request path, `receivers.sample_for_shadow` asks `shadow_plan` (an answer cached per
process for PLAN_TTL_S seconds, so nothing is queried per request) and, for the sampled
predictions only, sends `monitoring.compare_shadow`. On the monitoring worker, `compare_logged`
loads the staging version once per process (keyed by its id), answers the stored input again (the
upload kept for the retention period, the tabular row's features) with the parameters production
used, and saves a ShadowComparison with the numbers of mlops.monitoring.shadow. The staging version runs in one
thread per worker process at SHADOW_PRIORITY (by default Linux's SCHED_IDLE), with
SHADOW_INTRA_OP_THREADS threads of ONNX Runtime: on a host shared with the web process it takes
only the CPU production leaves idle.

`shadow_summary` pools the comparisons of one (production, shadow) version pair over a period for
the dashboard, the promotion confirmation page and the API.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Avg, Count, F, FloatField, Max, Min, Sum

from backend.classification.models import Classification
from backend.core.mlops_config import mlops_config
from backend.detection.models import Detection
from backend.monitoring.models import ShadowComparison, ShadowSettings
from backend.registry.artifacts import serving_files
from backend.registry.models import ModelVersion, RegisteredModel
from backend.scoring.models import TabularPrediction
from mlops.exceptions import MlopsError
from mlops.inference.images import decode_image
from mlops.inference.loader import load_predictor
from mlops.monitoring.shadow import class_probabilities, compare_classifications, compare_detections, compare_tabular

logger = logging.getLogger(__name__)

PLAN_TTL_S = 5.0  # how stale a process's "is shadow mode on for this model" may be
KEEP_PREDICTORS = 2  # staging versions kept loaded per worker process (the current one and the last)
RETRY_LOAD_AFTER_S = 60.0  # a staging version that failed to load is not tried again before this
LOW_NICENESS = 19


# -- the request path: is this model shadowed, and how often -----------------------------------------
@dataclass(frozen=True)
class ShadowPlan:
    """What the request path needs: how often to sample, and for which staging version."""

    sample_rate: float
    staging_version_id: int


_plans: dict[str, tuple[float, ShadowPlan | None]] = {}


def shadow_plan(model_name: str) -> ShadowPlan | None:
    """None unless shadow mode is on for the model and it has a staging version; one query per PLAN_TTL_S.

    `forget_shadow_plans` (a receiver of setting and staging changes) drops this process's answers
    at once; other processes see a change within PLAN_TTL_S.
    """
    now = time.monotonic()
    cached = _plans.get(model_name)
    if cached is not None and now < cached[0]:
        return cached[1]
    row = (
        ModelVersion.objects.filter(
            model__name=model_name,
            status=ModelVersion.Status.STAGING,
            model__shadow_settings__enabled=True,
            model__shadow_settings__sample_rate__gt=0,
        )
        .values_list("id", "model__shadow_settings__sample_rate")
        .first()
    )
    plan = ShadowPlan(sample_rate=row[1], staging_version_id=row[0]) if row else None
    _plans[model_name] = (now + PLAN_TTL_S, plan)
    return plan


def forget_shadow_plans() -> None:
    _plans.clear()


# -- the worker: the staging version, loaded once per process ----------------------------------------
_predictors: OrderedDict[int, object] = OrderedDict()
_load_failures: dict[int, tuple[float, str]] = {}
_predictors_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None


class ShadowUnavailable(MlopsError):
    """The staging version cannot answer (its files are gone, or it does not load)."""

    code = "shadow_unavailable"


def _lower_priority() -> None:
    """SHADOW_PRIORITY for the calling thread only (Linux schedules threads one by one).

    Only ever lowered, which needs no privilege: the staging version yields the CPU to the web
    process's requests and to the worker's other tasks.
    """
    priority = settings.SHADOW_PRIORITY
    if priority == "normal":
        return
    thread = threading.get_native_id()
    if priority == "idle" and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    elif os.getpriority(os.PRIO_PROCESS, thread) < LOW_NICENESS:
        os.setpriority(os.PRIO_PROCESS, thread, LOW_NICENESS)


def _shadow_thread() -> ThreadPoolExecutor:
    """The one thread per process that runs staging versions (created after a prefork child forked)."""
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow", initializer=_lower_priority)
        _executor_pid = os.getpid()
    return _executor


def _in_shadow_thread(fn, *args, **kwargs):
    return _shadow_thread().submit(fn, *args, **kwargs).result()


def staging_predictor(version: ModelVersion):
    """The predictor of `version` for this process, loaded on first use; ShadowUnavailable if it cannot be."""
    with _predictors_lock:
        if version.pk in _predictors:
            _predictors.move_to_end(version.pk)
            return _predictors[version.pk]
        failed = _load_failures.get(version.pk)
        if failed is not None and time.monotonic() < failed[0]:
            raise ShadowUnavailable(failed[1], details={"version": version.pk})
        try:
            predictor = _in_shadow_thread(_load, version)
        except Exception as exc:
            message = f"{version} cannot answer in shadow: {getattr(exc, 'message', None) or exc}"
            _load_failures[version.pk] = (time.monotonic() + RETRY_LOAD_AFTER_S, message)
            logger.warning("shadow.load_failed version=%s error=%s", version.pk, message)
            raise ShadowUnavailable(message, details={"version": version.pk}) from exc
        _load_failures.pop(version.pk, None)
        _predictors[version.pk] = predictor
        while len(_predictors) > KEEP_PREDICTORS:
            _predictors.popitem(last=False)
    logger.info("shadow.loaded model=%s version=%s", version.model.name, version.semantic_label)
    return predictor


def _load(version: ModelVersion):
    return load_predictor(
        version.model.kind,
        serving_files(version),
        version.metadata or {},
        intra_op_threads=settings.SHADOW_INTRA_OP_THREADS or None,
        spinning=False,  # a worker's idle threads must not take the CPU from the web process
        engine=settings.SERVING_ENGINE,  # the candidate answers as it would serve
    )


# -- the worker: one comparison per sampled prediction --------------------------------------------------
def compare_logged(*, kind: str, model_name: str, prediction_ids: list[str]) -> dict:
    """Answer the logged predictions again with the model's staging version and save the comparisons.

    Decided again here, not only when sampling: nothing is compared when shadow mode was switched
    off or the model has no staging version any more, or for predictions the staging version made
    itself (it was promoted since). A prediction compared before (a redelivered task) is skipped,
    and the database refuses a second row of one that two deliveries compare at once.
    """
    staging = (
        ModelVersion.objects.select_related("model")
        .filter(model__name=model_name, status=ModelVersion.Status.STAGING)
        .first()
    )
    if staging is None:
        return {"status": "no_staging_version", "saved": 0}
    if not ShadowSettings.objects.filter(model=staging.model, enabled=True).exists():
        return {"status": "shadow_off", "saved": 0}
    try:
        predictor = staging_predictor(staging)
    except ShadowUnavailable as exc:
        return {"status": exc.code, "error": exc.message, "saved": 0}
    if kind == "detection":
        rows, skipped = _compare_detections(staging, predictor, prediction_ids)
    elif kind == "tabular":
        rows, skipped = _compare_tabular(staging, predictor, prediction_ids)
    elif kind == "classification":
        rows, skipped = _compare_classifications(staging, predictor, prediction_ids)
    else:
        raise ValueError(f"unknown prediction kind {kind!r}")
    ShadowComparison.objects.bulk_create(rows, ignore_conflicts=True)
    logger.debug("shadow.compared model=%s shadow=%s rows=%d", model_name, staging.semantic_label, len(rows))
    return {"status": "compared", "shadow_version": staging.version, "saved": len(rows), "skipped": skipped}


def _comparison(staging: ModelVersion, production_version_id: int, ref: str, **numbers) -> ShadowComparison:
    return ShadowComparison(
        model_id=staging.model_id, production_version_id=production_version_id, shadow_version=staging,
        prediction_ref=ref, **numbers,
    )  # fmt: skip


def _compare_detections(staging: ModelVersion, predictor, ids: list[str]) -> tuple[list[ShadowComparison], int]:
    rows, skipped = [], 0
    done = _compared(staging, ids)
    detections = Detection.objects.filter(pk__in=[pk for pk in ids if pk not in done])
    detections = detections.exclude(model_version_id=staging.pk)
    for detection in detections.only(
        "id", "model_version_id", "image", "image_deleted_at", "boxes", "conf", "iou", "max_det"
    ):
        if not detection.has_image:
            skipped += 1  # retention deleted the upload before the sample was compared
            continue
        try:
            data = _read_upload(detection.image.name)
            result = _in_shadow_thread(_detect, predictor, data, detection)
        except (OSError, MlopsError) as exc:
            logger.warning("shadow.detection_skipped detection=%s error=%s", detection.pk, exc)
            skipped += 1
            continue
        numbers = compare_detections(detection.boxes, [box.to_dict() for box in result.boxes])
        rows.append(
            _comparison(
                staging,
                detection.model_version_id,
                str(detection.pk),
                compared=numbers["compared"],
                matched=numbers["matched"],
                agreement=numbers["match_share"],
                pairs=numbers["matched"],
                mean_delta=numbers["mean_confidence_delta"],
                mean_abs_delta=numbers["mean_abs_confidence_delta"],
                details=numbers,
                shadow_ms=round(result.inference_ms, 3),
            )
        )
    return rows, skipped


def _compared(staging: ModelVersion, refs: list[str]) -> set[str]:
    """The predictions among `refs` this staging version was already compared on."""
    existing = ShadowComparison.objects.filter(shadow_version=staging, prediction_ref__in=refs)
    return set(existing.values_list("prediction_ref", flat=True))


def _decode(data: bytes):
    """The upload decoded as the request decoded it (EXIF applied, 8-bit RGB, under the same caps)."""
    config = mlops_config()
    return decode_image(data, max_pixels=config.max_image_pixels, max_side=config.max_image_side)


def _read_upload(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def _detect(predictor, data: bytes, detection: Detection):
    """The upload detected with the thresholds production used."""
    return predictor.predict(_decode(data), conf=detection.conf, iou=detection.iou, max_det=detection.max_det)


def _classify(predictor, data: bytes):
    """The upload classified; the whole probability vector is compared, whatever top_k production listed."""
    return predictor.predict(_decode(data), top_k=1)


def _compare_classifications(staging: ModelVersion, predictor, ids: list[str]) -> tuple[list[ShadowComparison], int]:
    """Each sampled image classified again; the two probability vectors are matched by class name."""
    rows, skipped = [], 0
    done = _compared(staging, ids)
    classifications = Classification.objects.filter(pk__in=[pk for pk in ids if pk not in done])
    classifications = classifications.exclude(model_version_id=staging.pk).select_related("model_version")
    for classification in classifications.only(
        "id", "model_version", "model_version__metadata", "image", "image_deleted_at", "probabilities"
    ):
        if not classification.has_image:
            skipped += 1  # retention deleted the upload before the sample was compared
            continue
        try:
            production = class_probabilities(classification.class_names(), classification.probabilities)
            data = _read_upload(classification.image.name)
            result = _in_shadow_thread(_classify, predictor, data)
            shadow = class_probabilities(predictor.class_names, result.probabilities)
        except (OSError, ValueError, MlopsError) as exc:
            # ValueError: production's row and its version's class names disagree (nothing to match by).
            logger.warning("shadow.classification_skipped classification=%s error=%s", classification.pk, exc)
            skipped += 1
            continue
        numbers = compare_classifications(production, shadow)
        rows.append(
            _comparison(
                staging,
                classification.model_version_id,
                str(classification.pk),
                compared=1,
                matched=int(numbers["agreeing"]),
                agreement=1.0 if numbers["agreeing"] else 0.0,
                pairs=1,
                mean_delta=numbers["top1_probability_delta"],
                mean_abs_delta=numbers["mean_probability_delta"],
                details=numbers,
                shadow_ms=round(result.inference_ms, 3),
            )
        )
    return rows, skipped


def _compare_tabular(staging: ModelVersion, predictor, ids: list[str]) -> tuple[list[ShadowComparison], int]:
    rows, skipped = [], 0
    records = (
        TabularPrediction.objects.filter(pk__in=[int(pk) for pk in ids])
        .exclude(model_version_id=staging.pk)
        .only("request_id", "record_index", "model_version_id", "inputs", "probabilities")
        .order_by("request_id", "model_version_id", "record_index")
    )
    groups = [(key, list(group)) for key, group in groupby(records, key=lambda r: (r.request_id, r.model_version_id))]
    done = _compared(staging, [str(request_id) for (request_id, _), _ in groups])
    for (request_id, version_id), group in groups:
        if str(request_id) in done:
            continue
        started = time.perf_counter()
        try:
            answers = _in_shadow_thread(predictor.predict, [record.inputs for record in group])
        except MlopsError as exc:  # the staging version's features differ from production's
            logger.warning("shadow.tabular_skipped request=%s error=%s", request_id, exc)
            skipped += len(group)
            continue
        shadow_ms = (time.perf_counter() - started) * 1000
        numbers = compare_tabular([r.probabilities for r in group], [a.probabilities for a in answers])
        rows.append(
            _comparison(
                staging,
                version_id,
                str(request_id),
                compared=numbers["records"],
                matched=numbers["agreeing"],
                agreement=numbers["label_agreement"],
                pairs=numbers["records"],
                mean_delta=numbers["mean_label_probability_delta"],
                mean_abs_delta=numbers["mean_probability_delta"],
                details=numbers,
                shadow_ms=round(shadow_ms, 3),
            )
        )
    return rows, skipped


# -- what the pages and the API show ---------------------------------------------------------------------
def shadow_summary(
    model: RegisteredModel,
    since: datetime | None = None,
    *,
    shadow_version: ModelVersion | None = None,
    production_version: ModelVersion | None = None,
) -> dict | None:
    """Agreement of one (production, shadow) version pair over the comparisons since `since` (None: all).

    The pair defaults to the current production version and `shadow_version`, itself the current
    staging version by default; when that pair has no comparison in the period, the shadow
    version's latest compared pair; with no shadow version at all, the latest compared pair of the
    model. None when nothing was compared.
    """
    comparisons = ShadowComparison.objects.filter(model=model)
    if since is not None:
        comparisons = comparisons.filter(created_at__gte=since)
    shadow = shadow_version or model.versions.filter(status=ModelVersion.Status.STAGING).first()
    if shadow is not None:
        comparisons = comparisons.filter(shadow_version=shadow)
    production = production_version or model.production_version
    pair = comparisons.filter(production_version=production) if production is not None else comparisons.none()
    if not pair.exists():
        latest = comparisons.select_related("production_version", "shadow_version").order_by("-created_at", "-id")
        latest = latest.first()
        if latest is None:
            return None
        production, shadow = latest.production_version, latest.shadow_version
    elif shadow is None:
        shadow = pair.select_related("shadow_version").order_by("-created_at", "-id").first().shadow_version
    return _summarise(
        model, production, shadow, comparisons.filter(production_version=production, shadow_version=shadow), since
    )


def shadow_pairs(model: RegisteredModel, since: datetime | None = None) -> list[dict]:
    """One summary per (production, shadow) version pair compared since `since`, latest first."""
    comparisons = ShadowComparison.objects.filter(model=model)
    if since is not None:
        comparisons = comparisons.filter(created_at__gte=since)
    pairs = (
        comparisons.values("production_version", "shadow_version").annotate(last=Max("created_at")).order_by("-last")
    )
    versions = ModelVersion.objects.select_related("model").in_bulk(
        {pk for pair in pairs for pk in (pair["production_version"], pair["shadow_version"])}
    )
    return [
        _summarise(
            model,
            versions[pair["production_version"]],
            versions[pair["shadow_version"]],
            comparisons.filter(production_version=pair["production_version"], shadow_version=pair["shadow_version"]),
            since,
        )
        for pair in pairs
    ]


def _summarise(model, production: ModelVersion, shadow: ModelVersion, comparisons, since) -> dict:
    numbers = comparisons.aggregate(
        samples=Count("id"),
        total_compared=Sum("compared"),
        total_matched=Sum("matched"),
        total_pairs=Sum("pairs"),
        delta=Sum(F("mean_delta") * F("pairs"), output_field=FloatField()),
        abs_delta=Sum(F("mean_abs_delta") * F("pairs"), output_field=FloatField()),
        shadow_ms=Avg("shadow_ms"),
        first_at=Min("created_at"),
        last_at=Max("created_at"),
    )
    compared = numbers["total_compared"] or 0
    matched = numbers["total_matched"] or 0
    pairs = numbers["total_pairs"] or 0
    # Pooled over boxes or records; images where neither version found anything agree (and weigh nothing).
    agreement = matched / compared if compared else (1.0 if numbers["samples"] else None)
    delta = numbers["delta"] / pairs if pairs and numbers["delta"] is not None else None
    abs_delta = numbers["abs_delta"] / pairs if pairs and numbers["abs_delta"] is not None else None
    summary = {
        "model": model.name,
        "kind": model.kind,
        "production": production.ref(),
        "shadow": shadow.ref(),
        "shadow_is_staging": shadow.status == ModelVersion.Status.STAGING,
        "since": since,
        "first_at": numbers["first_at"],
        "last_at": numbers["last_at"],
        "samples": numbers["samples"],
        "shadow_ms_mean": _rounded(numbers["shadow_ms"], 3),
    }
    if model.kind == RegisteredModel.Kind.DETECTION:
        summary.update(
            boxes_compared=compared,
            boxes_matched=matched,
            box_match_share=_rounded(agreement),
            mean_confidence_delta=_rounded(delta),
            mean_abs_confidence_delta=_rounded(abs_delta),
        )
    elif model.kind == RegisteredModel.Kind.CLASSIFICATION:
        summary.update(
            images=compared,
            images_agreeing=matched,
            top1_agreement=_rounded(agreement),
            mean_probability_delta=_rounded(abs_delta),
            mean_top1_probability_delta=_rounded(delta),
        )
    else:
        summary.update(
            records=compared,
            records_agreeing=matched,
            label_agreement=_rounded(agreement),
            mean_probability_delta=_rounded(abs_delta),
            mean_label_probability_delta=_rounded(delta),
        )
    return summary


def latest_comparisons(model: RegisteredModel, *, limit: int = 50, since: datetime | None = None):
    comparisons = ShadowComparison.objects.filter(model=model).select_related(
        "production_version__model", "shadow_version__model"
    )
    if since is not None:
        comparisons = comparisons.filter(created_at__gte=since)
    return list(comparisons.order_by("-created_at", "-id")[:limit])


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
