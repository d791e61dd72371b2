"""Batches of detections: the detection kind of backend.serving.batches, and the batch's results as
JSON and CSV (one row per box)."""

from __future__ import annotations

import csv
import io

from backend.detection.models import Batch, Detection
from backend.detection.services.detect import DetectionParams, detect_image
from backend.serving.batches import BatchKind, csv_safe
from backend.serving.services import Requester
from backend.serving.sources import Source


class DetectionBatches(BatchKind):
    kind = "detection"
    noun = "a detector"
    batch_model = Batch
    task = "detection.run_batch"

    def predict(self, batch: Batch, data: bytes, filename: str, requester: Requester) -> None:
        detect_image(
            data,
            filename=filename,
            model_name=batch.model_name,
            params=DetectionParams(conf=batch.conf, iou=batch.iou, max_det=batch.max_det),
            requester=requester,
            source=Source.BATCH,
            batch=batch,
        )

    def done(self, batch: Batch) -> set[str]:
        return set(batch.detections.values_list("filename", flat=True))


BATCHES = DetectionBatches()


def create_batch(uploads, *, model_name: str, params: DetectionParams, requester: Requester) -> Batch:
    """Store the batch's images and its row, then enqueue its task; a refused upload leaves nothing behind."""
    batch = Batch(
        model_name=model_name,
        conf=params.conf,
        iou=params.iou,
        max_det=params.max_det,
        user=requester.user,
        session_key=requester.session_key,
    )
    return BATCHES.create(uploads, batch)


def run_batch(batch_id: str) -> Batch:
    """Detect every input of the batch not done yet; the batch ends succeeded (per-image errors kept) or failed."""
    return BATCHES.run(batch_id)


def reap_stale_batches(*, now=None) -> dict[str, int]:
    return BATCHES.reap(now=now)


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
        row = {"filename": csv_safe(result["filename"]), "status": result["status"]}
        if result["status"] == "failed":
            writer.writerow({**row, "error": csv_safe(f"{result['error']['code']}: {result['error']['message']}")})
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
