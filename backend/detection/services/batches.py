"""Batches: many images (a zip, or several files) detected by a Celery task, with progress and results.

The upload is unpacked and checked in the request (count and size caps, images only), the inputs
are stored under MEDIA_ROOT/batches/<id>/ and the task runs them one by one through the same
`detect_image` as single uploads. The task resumes where it stopped if the broker delivers it
again (inputs already done are skipped), and deletes the inputs when it finishes.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from functools import partial
from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from backend.core.queue import send_task
from backend.core.services import record_prediction_error
from backend.detection.models import Batch, Detection, Source
from backend.detection.services.detect import DetectionParams, detect_image
from backend.registry.models import RegisteredModel
from backend.serving.services import Requester
from mlops.exceptions import InputTooLarge, InvalidInput, MlopsError, ModelUnavailable

logger = logging.getLogger(__name__)

MAX_BATCH_IMAGES = 500
MAX_BATCH_BYTES = 512 * 1024 * 1024  # uncompressed, all images together
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


class QueueUnavailable(MlopsError):
    code = "queue_unavailable"
    status = 503


def _is_image_name(name: str) -> bool:
    path = PurePosixPath(name)
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return not hidden and path.suffix.lower() in IMAGE_SUFFIXES


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        path = PurePosixPath(name)
        candidate = str(path.with_name(f"{path.stem} ({number}){path.suffix}"))
        number += 1
    taken.add(candidate)
    return candidate


def _expand(uploads) -> list[tuple[str, bytes]]:
    """(name, bytes) of every image in the uploads, zips unpacked; refuses too many or too big."""
    images: list[tuple[str, bytes]] = []
    total = 0

    def add(name: str, read) -> None:
        nonlocal total
        if len(images) >= MAX_BATCH_IMAGES:
            raise InputTooLarge(
                f"A batch holds at most {MAX_BATCH_IMAGES} images.", code="batch_too_large", details={"field": "files"}
            )
        data = read()
        total += len(data)
        if total > MAX_BATCH_BYTES:
            raise InputTooLarge(
                f"A batch holds at most {MAX_BATCH_BYTES} bytes of images.",
                code="batch_too_large",
                details={"field": "files"},
            )
        images.append((name, data))

    for upload in uploads:
        name = upload.name or "upload"
        if name.lower().endswith(".zip") or zipfile.is_zipfile(upload):
            upload.seek(0)
            try:
                archive = zipfile.ZipFile(upload)
            except zipfile.BadZipFile as exc:
                raise InvalidInput(f"{name} is not a readable zip file.", code="invalid_archive") from exc
            with archive:
                members = [m for m in archive.infolist() if not m.is_dir() and _is_image_name(m.filename)]
                # Declared sizes first: a zip bomb is refused before anything is inflated.
                if sum(member.file_size for member in members) > MAX_BATCH_BYTES:
                    raise InputTooLarge(
                        f"{name} unpacks to more than {MAX_BATCH_BYTES} bytes of images.",
                        code="batch_too_large",
                        details={"field": "files"},
                    )
                for member in members:
                    add(member.filename, partial(archive.read, member))
        else:
            upload.seek(0)
            add(PurePosixPath(name).name, upload.read)
    if not images:
        raise InvalidInput(
            "The upload holds no images (accepted: a zip of images, or image files).",
            code="no_images",
            details={"field": "files", "accepted": sorted(IMAGE_SUFFIXES)},
        )
    return images


def create_batch(uploads, *, model_name: str, params: DetectionParams, requester: Requester) -> Batch:
    """Store the batch's images and its row, then enqueue its task; refuses bad uploads before any write."""
    model = RegisteredModel.objects.named(model_name)
    if model.kind != RegisteredModel.Kind.DETECTION:
        raise InvalidInput(f"{model_name!r} is a {model.kind} model, not a detector.", code="wrong_model_kind")
    images = _expand(uploads)
    batch = Batch(
        model_name=model_name,
        conf=params.conf,
        iou=params.iou,
        max_det=params.max_det,
        total=len(images),
        user=requester.user,
        session_key=requester.session_key,
    )
    batch.input_dir = f"batches/{batch.id.hex}"
    taken: set[str] = set()
    written: list[str] = []
    try:
        for index, (name, data) in enumerate(images):
            filename = _unique(name, taken)
            suffix = PurePosixPath(filename).suffix.lower()
            path = default_storage.save(f"{batch.input_dir}/{index:05d}{suffix}", ContentFile(data))
            written.append(path)
            batch.inputs.append({"filename": filename, "path": path})
        batch.save(force_insert=True)
    except BaseException:
        for path in written:
            default_storage.delete(path)
        raise
    try:
        result = send_task("detection.run_batch", kwargs={"batch_id": str(batch.id)})
    except Exception as exc:
        Batch.objects.filter(pk=batch.pk).update(
            status=Batch.Status.FAILED, error=f"could not be queued: {exc}", finished_at=timezone.now()
        )
        _delete_inputs(batch)
        raise QueueUnavailable("The task queue does not answer; try again later.") from exc
    Batch.objects.filter(pk=batch.pk).update(task_id=result.id or "")
    batch.task_id = result.id or ""
    logger.info("detection.batch_created batch=%s images=%d model=%s", batch.pk, batch.total, model_name)
    return batch


def run_batch(batch_id: str) -> Batch:
    """Detect every input of the batch not done yet; the batch ends succeeded (per-image errors kept) or failed."""
    claimed = Batch.objects.filter(pk=batch_id, status__in=[Batch.Status.PENDING, Batch.Status.RUNNING]).update(
        status=Batch.Status.RUNNING, started_at=timezone.now()
    )
    batch = Batch.objects.get(pk=batch_id)
    if not claimed:
        logger.info("detection.batch_skipped batch=%s status=%s", batch_id, batch.status)
        return batch
    requester = Requester(user=batch.user, session_key=batch.session_key)
    done = set(batch.detections.values_list("filename", flat=True)) | {e["filename"] for e in batch.errors}
    errors = list(batch.errors)
    processed = len(done)
    try:
        for item in batch.inputs:
            if item["filename"] in done:
                continue
            failed = _run_one(batch, item, requester)
            if failed is not None:
                errors.append(failed)
            processed += 1
            Batch.objects.filter(pk=batch.pk).update(processed=processed, failed=len(errors), errors=errors)
    except ModelUnavailable as exc:
        record_prediction_error(batch.model_name, "detection", exc.code)
        Batch.objects.filter(pk=batch.pk).update(
            status=Batch.Status.FAILED, error=f"{exc.code}: {exc.message}", finished_at=timezone.now()
        )
        logger.warning("detection.batch_failed batch=%s error=%s", batch.pk, exc.message)
    else:
        Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.SUCCEEDED, finished_at=timezone.now())
        logger.info("detection.batch_done batch=%s images=%d failed=%d", batch.pk, batch.total, len(errors))
    _delete_inputs(batch)
    batch.refresh_from_db()
    return batch


def _run_one(batch: Batch, item: dict, requester: Requester) -> dict | None:
    try:
        with default_storage.open(item["path"], "rb") as handle:
            data = handle.read()
        detect_image(
            data,
            filename=item["filename"],
            model_name=batch.model_name,
            params=DetectionParams(conf=batch.conf, iou=batch.iou, max_det=batch.max_det),
            requester=requester,
            source=Source.BATCH,
            batch=batch,
        )
    except ModelUnavailable:
        raise
    except MlopsError as exc:
        failed = {"filename": item["filename"], "code": exc.code, "message": exc.message}
    except FileNotFoundError:
        failed = {"filename": item["filename"], "code": "input_missing", "message": "The stored input is gone."}
    else:
        return None
    record_prediction_error(batch.model_name, "detection", failed["code"])
    return failed


def _delete_inputs(batch: Batch) -> None:
    for item in batch.inputs:
        default_storage.delete(item["path"])


# -- results ----------------------------------------------------------------------------------------
def batch_results(batch: Batch) -> list[dict]:
    """One entry per input, in upload order: its detection, or its error, or still pending."""
    detections = {d.filename: d for d in batch.detections.select_related("model_version__model").order_by("created_at")}
    errors = {error["filename"]: error for error in batch.errors}
    results = []
    for item in batch.inputs:
        name = item["filename"]
        if name in detections:
            detection: Detection = detections[name]
            version = detection.model_version
            results.append(
                {
                    "filename": name,
                    "status": "done",
                    "detection_id": str(detection.pk),
                    "model": version.ref(),
                    "image": {"width": detection.width, "height": detection.height},
                    "boxes": detection.boxes,
                    "latency_ms": detection.latency_ms,
                }
            )
        elif name in errors:
            error = errors[name]
            results.append(
                {"filename": name, "status": "failed", "error": {"code": error["code"], "message": error["message"]}}
            )
        else:
            results.append({"filename": name, "status": "pending"})
    return results


CSV_COLUMNS = [
    "filename",
    "status",
    "detection_id",
    "model",
    "version",
    "label",
    "width",
    "height",
    "box_index",
    "class_id",
    "class_name",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "error",
]


def batch_results_csv(batch: Batch) -> str:
    """One row per box (an image without boxes or with an error gets one row with empty box columns)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for result in batch_results(batch):
        row = {"filename": _csv_safe(result["filename"]), "status": result["status"]}
        if result["status"] == "failed":
            writer.writerow({**row, "error": _csv_safe(f"{result['error']['code']}: {result['error']['message']}")})
            continue
        if result["status"] != "done":
            writer.writerow(row)
            continue
        row.update(
            detection_id=result["detection_id"],
            model=result["model"]["name"],
            version=result["model"]["version"],
            label=result["model"]["label"],
            width=result["image"]["width"],
            height=result["image"]["height"],
        )
        if not result["boxes"]:
            writer.writerow(row)
        for index, box in enumerate(result["boxes"]):
            x1, y1, x2, y2 = box["xyxy"]
            writer.writerow(
                {
                    **row,
                    "box_index": index,
                    "class_id": box["class_id"],
                    "class_name": box["class_name"],
                    "confidence": box["confidence"],
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                }
            )
    return buffer.getvalue()


def _csv_safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text
