"""Batches of detections: the detection kind of backend.serving.batches; results as JSON and CSV
(one row per box)."""

from __future__ import annotations

from backend.detection.models import Batch, Detection
from backend.detection.services.detect import DetectionParams, detect_image
from backend.serving.batches import BatchKind
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

    def predictions(self, batch: Batch) -> dict[str, Detection]:
        rows = batch.detections.select_related("model_version__model").order_by("created_at")
        return {detection.filename: detection for detection in rows}

    def answer(self, detection: Detection) -> dict:
        return {"boxes": detection.boxes}

    csv_item_columns = ("box_index", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2")

    def csv_items(self, result: dict) -> list[dict]:
        items = []
        for index, box in enumerate(result["boxes"]):
            x1, y1, x2, y2 = box["xyxy"]
            scores = {"class_id": box["class_id"], "class_name": box["class_name"], "confidence": box["confidence"]}
            items.append({"box_index": index, **scores, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
        return items


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


def batch_results(batch: Batch) -> list[dict]:
    """One entry per input, in upload order: its detection (boxes), or its error, or still pending."""
    return BATCHES.results(batch)


def batch_results_csv(batch: Batch) -> str:
    """One row per box (an image without boxes or with an error gets one row with empty box columns)."""
    return BATCHES.results_csv(batch)
