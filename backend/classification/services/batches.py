"""Batches of classifications: the classification kind of backend.serving.batches, and the batch's
results as JSON and CSV (one row per image and listed class)."""

from __future__ import annotations

import csv
import io

from backend.classification.models import Classification, ClassificationBatch
from backend.classification.services.classify import classify_image
from backend.serving.batches import BatchKind, csv_safe
from backend.serving.services import Requester, model_info
from backend.serving.sources import Source
from mlops.inference.classifier import check_top_k


class ClassificationBatches(BatchKind):
    kind = "classification"
    noun = "a classifier"
    batch_model = ClassificationBatch
    task = "classification.run_batch"

    def predict(self, batch: ClassificationBatch, data: bytes, filename: str, requester: Requester) -> None:
        classify_image(
            data,
            filename=filename,
            model_name=batch.model_name,
            top_k=batch.top_k,
            requester=requester,
            source=Source.BATCH,
            batch=batch,
        )

    def done(self, batch: ClassificationBatch) -> set[str]:
        return set(batch.classifications.values_list("filename", flat=True))


BATCHES = ClassificationBatches()


def create_batch(uploads, *, model_name: str, top_k: int | None, requester: Requester) -> ClassificationBatch:
    """Store the batch's images and its row, then enqueue its task; a refused upload leaves nothing behind.

    A `top_k` past the classes of the version in production is refused now, not once per image."""
    class_names = model_info(model_name)["class_names"]
    if top_k is not None and class_names:
        check_top_k(top_k, len(class_names))
    batch = ClassificationBatch(
        model_name=model_name, top_k=top_k, user=requester.user, session_key=requester.session_key
    )
    return BATCHES.create(uploads, batch)


def batch_results(batch: ClassificationBatch) -> list[dict]:
    """One entry per input, in upload order: its classes, or its error, or still pending."""
    rows = {c.filename: c for c in batch.classifications.select_related("model_version__model")}
    errors = {error["filename"]: error for error in batch.errors}
    results = []
    for item in batch.inputs:
        name = item["filename"]
        if name in rows:
            row: Classification = rows[name]
            results.append(
                {
                    "filename": name,
                    "status": "done",
                    "classification_id": str(row.pk),
                    "model": row.model_version.ref(),
                    "image": {"width": row.width, "height": row.height},
                    "prediction": row.class_name,
                    "confidence": row.confidence,
                    "classes": row.classes,
                    "latency_ms": row.latency_ms,
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
    "classification_id",
    "model",
    "version",
    "label",
    "width",
    "height",
    "rank",
    "class_id",
    "class_name",
    "probability",
    "error",
]


def batch_results_csv(batch: ClassificationBatch) -> str:
    """One row per listed class, best first (rank 1); an image with an error gets one row."""
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
            classification_id=result["classification_id"],
            model=result["model"]["name"],
            version=result["model"]["version"],
            label=result["model"]["label"],
            width=result["image"]["width"],
            height=result["image"]["height"],
        )
        for rank, score in enumerate(result["classes"], start=1):
            writer.writerow(
                {
                    **row,
                    "rank": rank,
                    "class_id": score["class_id"],
                    "class_name": csv_safe(score["class_name"]),
                    "probability": score["probability"],
                }
            )
    return buffer.getvalue()
