"""Feedback as labelled data: a YOLO-format dataset of the images people judged, for retraining.

A detection is exported when its latest whole-image verdict is "correct" (the boxes at or above the
threshold it was judged at are right and nothing is missing), or when it has no whole-image verdict
but every box got one. Box verdicts refine the labels: a wrong box with a class is relabelled, a
wrong box without one (not an object) is dropped, a right box is kept even below the threshold.
Images are written as the model saw them (EXIF orientation applied), so labels match the pixels.

Only verdicts of trusted reviewers count (staff, or the `detection.trusted_feedback` permission):
anyone may judge a detection, and a label is ground truth for the next model. Untrusted verdicts
(anonymous ones among them) are kept and counted, and exported only when asked for
(`include_untrusted`); the manifest says which choice made the dataset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Prefetch

from backend.detection.models import Detection, Feedback
from backend.detection.services.detect import DEFAULT_CONF
from backend.detection.services.pictures import stored_image
from backend.registry.models import RegisteredModel
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackExport:
    directory: Path
    images: int
    boxes: int
    skipped: int  # judged detections the counted verdicts do not settle (or whose image is gone)
    untrusted: int = 0  # verdicts left out because their author is not a trusted reviewer
    include_untrusted: bool = False


def labelled_boxes(detection: Detection, feedback: list[Feedback]) -> list[tuple[int, list[float]]] | None:
    """(class id, xyxyn) of the boxes the feedback vouches for, or None when it does not settle the image."""
    latest_image: Feedback | None = None
    latest_box: dict[int, Feedback] = {}
    for item in sorted(feedback, key=lambda f: (f.created_at, f.pk)):
        if item.box_index is None:
            latest_image = item
        else:
            latest_box[item.box_index] = item
    if latest_image is not None and latest_image.verdict == Feedback.Verdict.WRONG:
        return None
    if latest_image is not None:
        threshold = latest_image.min_confidence if latest_image.min_confidence is not None else DEFAULT_CONF
        keep = {i for i, box in enumerate(detection.boxes) if box["confidence"] >= threshold}
    elif detection.boxes and len(latest_box) == len(detection.boxes):
        keep = set()
    else:
        return None
    labels = []
    for index, box in enumerate(detection.boxes):
        verdict = latest_box.get(index)
        class_id = box["class_id"]
        if verdict is not None:
            if verdict.verdict == Feedback.Verdict.WRONG and verdict.correct_class_id is None:
                continue
            if verdict.verdict == Feedback.Verdict.WRONG:
                class_id = verdict.correct_class_id
        elif index not in keep:
            continue
        labels.append((class_id, box["xyxyn"]))
    return labels


def yolo_line(class_id: int, xyxyn: list[float]) -> str:
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in xyxyn)
    return f"{class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


def export_feedback(model_name: str, directory: Path, *, include_untrusted: bool = False) -> FeedbackExport:
    """Write images/, labels/, data.yaml and manifest.json under `directory` for the model's judged detections.

    Labels come from trusted reviewers' verdicts only, unless `include_untrusted` (anonymous ones too).
    """
    model = RegisteredModel.objects.named(model_name)
    latest = model.versions.order_by("-version").first()
    class_names = list((latest.metadata or {}).get("class_names") or model.class_names) if latest else []
    images_dir, labels_dir = directory / "images", directory / "labels"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    counted = Feedback.objects.all() if include_untrusted else Feedback.objects.trusted()
    judged = Detection.objects.filter(model_version__model=model, feedback__isnull=False)
    untrusted = 0 if include_untrusted else Feedback.objects.untrusted().filter(detection__in=judged).count()
    detections = (
        judged.filter(image_deleted_at__isnull=True)
        .exclude(image="")
        .distinct()
        .prefetch_related(Prefetch("feedback", queryset=counted, to_attr="counted_feedback"))
        .order_by("created_at")
    )
    manifest, boxes, skipped = [], 0, 0
    for detection in detections:
        if not detection.counted_feedback:
            continue  # judged by untrusted people only: counted in `untrusted`, not an unsettled image
        labels = labelled_boxes(detection, detection.counted_feedback)
        if labels is None:
            skipped += 1
            continue
        try:
            image = stored_image(detection)
        except MlopsError:
            skipped += 1
            continue
        stem = detection.pk.hex
        image.save(images_dir / f"{stem}.jpg", format="JPEG", quality=95)
        (labels_dir / f"{stem}.txt").write_text("".join(yolo_line(c, xyxyn) + "\n" for c, xyxyn in labels))
        boxes += len(labels)
        manifest.append({"detection": str(detection.pk), "version": detection.model_version_id, "boxes": len(labels)})
    (directory / "data.yaml").write_text(
        f"path: {directory.resolve()}\ntrain: images\nval: images\nnames: {json.dumps(class_names)}\n"
    )
    summary = {"model": model_name, "include_untrusted": include_untrusted, "untrusted_verdicts_left_out": untrusted}
    (directory / "manifest.json").write_text(json.dumps({**summary, "images": manifest}, indent=2))
    logger.info(
        "detection.feedback_exported model=%s images=%d skipped=%d untrusted_left_out=%d include_untrusted=%s",
        model_name, len(manifest), skipped, untrusted, include_untrusted,
    )  # fmt: skip
    return FeedbackExport(
        directory=directory,
        images=len(manifest),
        boxes=boxes,
        skipped=skipped,
        untrusted=untrusted,
        include_untrusted=include_untrusted,
    )
