"""Score tabular records with the production model and log each one.

The scorer checks every record against the version's feature schema (naming the record and field
at fault) and assembles columns by feature name in schema order; nothing is logged for a call
that fails validation. Once the rows are committed, `prediction_logged` names them to whoever
samples predictions (shadow mode).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from backend.core import metrics
from backend.scoring.models import TabularPrediction
from backend.serving.loading import ServingVersion
from backend.serving.services import Requester, inference_slot, served_model
from backend.serving.signals import prediction_logged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringResult:
    request_id: uuid.UUID
    version: ServingVersion
    predictions: list[dict]
    latency_ms: float

    def to_dict(self) -> dict:
        return {
            "request_id": str(self.request_id),
            "model": self.version.as_dict(),
            "predictions": self.predictions,
            "latency_ms": self.latency_ms,
        }


def score_records(
    records: list[dict],
    *,
    model_name: str | None = None,
    requester: Requester | None = None,
    source: str = TabularPrediction.Source.API,
    started: float | None = None,
) -> ScoringResult:
    """Class and probabilities per record from the production version; one TabularPrediction row each."""
    started = started if started is not None else time.perf_counter()
    requester = requester or Requester()
    served = served_model(model_name or settings.DEFAULT_TABULAR_MODEL, "tabular")
    scorer = served.predictor
    with inference_slot(scorer):
        inference_started = time.perf_counter()
        predictions = scorer.predict(records)
        inference_s = time.perf_counter() - inference_started
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    _observe(served.version, predictions, latency_s=latency_ms / 1000, inference_s=inference_s)
    request_id = uuid.uuid4()
    names = scorer.feature_names
    rows = TabularPrediction.objects.bulk_create(
        [
            TabularPrediction(
                request_id=request_id,
                record_index=index,
                model_version_id=served.version.id,
                source=source,
                inputs={name: record[name] for name in names},
                label=prediction.label,
                class_id=prediction.class_id,
                probabilities=prediction.probabilities,
                confidence=prediction.probabilities[prediction.label],
                latency_ms=latency_ms,
                user=requester.user,
                session_key=requester.session_key,
            )
            for index, (record, prediction) in enumerate(zip(records, predictions, strict=True))
        ]
    )
    ids = [str(row.pk) for row in rows]
    transaction.on_commit(lambda: _announce(served.name, served.version.id, ids), robust=True)
    logger.debug("scoring.scored model=%s version=%s records=%d", served.name, served.version.label, len(records))
    return ScoringResult(
        request_id=request_id,
        version=served.version,
        predictions=[{"record": index, **p.to_dict()} for index, p in enumerate(predictions)],
        latency_ms=latency_ms,
    )


def _announce(model_name: str, version_id: int, ids: list[str]) -> None:
    prediction_logged.send(
        sender=TabularPrediction, kind="tabular", model_name=model_name, version_id=version_id, prediction_ids=ids
    )


def _observe(version: ServingVersion, predictions: list, *, latency_s: float, inference_s: float) -> None:
    metrics.observe_prediction(
        version.model_name,
        version.version,
        "tabular",
        latency_s=latency_s,
        inference_s=inference_s,
        class_names=[prediction.label for prediction in predictions],
        count=len(predictions),
    )
