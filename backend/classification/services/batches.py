"""Batches of classifications: the classification kind of backend.serving.batches, and the batch's
results as JSON and CSV (one row per image and listed class)."""

from __future__ import annotations

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

    def predictions(self, batch: ClassificationBatch) -> dict[str, Classification]:
        return {row.filename: row for row in batch.classifications.select_related("model_version__model")}

    def answer(self, row: Classification) -> dict:
        return {"prediction": row.class_name, "confidence": row.confidence, "classes": row.classes}

    csv_item_columns = ("rank", "class_id", "class_name", "probability")

    def csv_items(self, result: dict) -> list[dict]:
        return [
            {
                "rank": rank,
                "class_id": score["class_id"],
                "class_name": csv_safe(score["class_name"]),
                "probability": score["probability"],
            }
            for rank, score in enumerate(result["classes"], start=1)
        ]


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
    return BATCHES.results(batch)


def batch_results_csv(batch: ClassificationBatch) -> str:
    """One row per listed class, best first (rank 1); an image with an error gets one row."""
    return BATCHES.results_csv(batch)
