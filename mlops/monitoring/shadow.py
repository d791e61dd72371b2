"""How far a staging version's answers are from production's on the same inputs (shadow mode).

Plain functions over the answers as the prediction log stores them, so that the numbers of one
comparison mean the same whoever computes them:

- detectors: boxes of the same class matched one to one at IoU >= 0.5, production's boxes taken
  by descending confidence, each pairing with the unmatched shadow box it overlaps most (COCO's
  greedy rule). The match share is matched / max(production boxes, shadow boxes), so both a
  missed box and an extra one lower it; two empty answers agree (1.0).
- tabular models: whether the two labels (each version's most probable class) are the same, and
  how far apart the probabilities are (mean over records of the mean absolute difference over
  classes; a class only one version knows counts as probability 0 for the other).
- image classifiers: the same numbers for one image, classes matched by name (a staging version
  may order or name its classes differently): whether the top-1 classes agree, the mean absolute
  probability difference, and the change of the probability of production's top-1 class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_IOU = 0.5


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes; corners in either order (barely trained heads invert them)."""
    ax1, ax2 = sorted((float(a[0]), float(a[2])))
    ay1, ay2 = sorted((float(a[1]), float(a[3])))
    bx1, bx2 = sorted((float(b[0]), float(b[2])))
    by1, by2 = sorted((float(b[1]), float(b[3])))
    width = min(ax2, bx2) - max(ax1, bx1)
    height = min(ay2, by2) - max(ay1, by1)
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - intersection
    return intersection / union if union > 0 else 0.0


def _class_of(box: Mapping):
    return box.get("class_name") if box.get("class_name") is not None else box.get("class_id")


def match_boxes(
    production_boxes: Sequence[Mapping], shadow_boxes: Sequence[Mapping], iou: float = DEFAULT_IOU
) -> list[tuple[int, int, float]]:
    """(production index, shadow index, IoU) of each matched pair, in production's confidence order."""
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], not {iou}")
    order = sorted(range(len(production_boxes)), key=lambda i: -float(production_boxes[i]["confidence"]))
    taken: set[int] = set()
    pairs = []
    for p_index in order:
        p_box = production_boxes[p_index]
        best, best_iou = None, iou
        for s_index, s_box in enumerate(shadow_boxes):
            if s_index in taken or _class_of(s_box) != _class_of(p_box):
                continue
            overlap = box_iou(p_box["xyxy"], s_box["xyxy"])
            if overlap >= best_iou and (best is None or overlap > best_iou):
                best, best_iou = s_index, overlap
        if best is not None:
            taken.add(best)
            pairs.append((p_index, best, best_iou))
    return pairs


def compare_detections(
    production_boxes: Sequence[Mapping], shadow_boxes: Sequence[Mapping], iou: float = DEFAULT_IOU
) -> dict:
    """Agreement of two detectors on one image; boxes are dicts with xyxy, class_name (or class_id), confidence.

    Returns the counts, `match_share` (matched / max of the two counts; 1.0 when both are empty),
    and over the matched pairs `mean_confidence_delta` (shadow minus production),
    `mean_abs_confidence_delta` and `mean_iou` (None without a pair).
    """
    pairs = match_boxes(production_boxes, shadow_boxes, iou)
    compared = max(len(production_boxes), len(shadow_boxes))
    deltas = [float(shadow_boxes[s]["confidence"]) - float(production_boxes[p]["confidence"]) for p, s, _ in pairs]
    return {
        "iou_threshold": iou,
        "production_boxes": len(production_boxes),
        "shadow_boxes": len(shadow_boxes),
        "compared": compared,
        "matched": len(pairs),
        "match_share": len(pairs) / compared if compared else 1.0,
        "mean_confidence_delta": _mean(deltas),
        "mean_abs_confidence_delta": _mean([abs(d) for d in deltas]),
        "mean_iou": _mean([overlap for _, _, overlap in pairs]),
    }


def label_of(probabilities: Mapping[str, float]) -> str:
    """The most probable class; a tie goes to the class listed first (the model's class order)."""
    if not probabilities:
        raise ValueError("no probabilities")
    best = None
    for name, value in probabilities.items():
        if best is None or float(value) > float(probabilities[best]):
            best = name
    return best


def compare_tabular(
    production_probabilities: Sequence[Mapping[str, float]], shadow_probabilities: Sequence[Mapping[str, float]]
) -> dict:
    """Agreement of two classifiers on the same records; each record is a {class name: probability} dict.

    Returns `records`, `agreeing` (same label), `label_agreement` (their share),
    `mean_probability_delta` (mean absolute difference per class, averaged over records) and
    `mean_label_probability_delta` (shadow minus production, on the class production chose).
    """
    if len(production_probabilities) != len(shadow_probabilities):
        raise ValueError(
            f"{len(production_probabilities)} production records but {len(shadow_probabilities)} shadow records"
        )
    agreeing = 0
    absolute: list[float] = []
    signed: list[float] = []
    for production, shadow in zip(production_probabilities, shadow_probabilities, strict=True):
        label = label_of(production)
        agreeing += label == label_of(shadow)
        classes = list(dict.fromkeys([*production, *shadow]))
        absolute.append(
            sum(abs(float(shadow.get(c, 0.0)) - float(production.get(c, 0.0))) for c in classes) / len(classes)
        )
        signed.append(float(shadow.get(label, 0.0)) - float(production[label]))
    records = len(production_probabilities)
    return {
        "records": records,
        "agreeing": agreeing,
        "label_agreement": agreeing / records if records else None,
        "mean_probability_delta": _mean(absolute),
        "mean_label_probability_delta": _mean(signed),
    }


def class_probabilities(class_names: Sequence[str], probabilities: Sequence[float]) -> dict[str, float]:
    """A classifier's probability vector as {class name: probability}, in the version's class order."""
    if len(class_names) != len(probabilities):
        raise ValueError(f"{len(probabilities)} probabilities for {len(class_names)} classes")
    return {str(name): float(p) for name, p in zip(class_names, probabilities, strict=True)}


def compare_classifications(production: Mapping[str, float], shadow: Mapping[str, float]) -> dict:
    """Agreement of two image classifiers on one image; each answer is {class name: probability}.

    Returns both top-1 classes and probabilities, `agreeing` (the same top-1 class),
    `mean_probability_delta` (mean absolute difference over the classes of either version) and
    `top1_probability_delta` (shadow minus production, on the class production chose).
    """
    numbers = compare_tabular([production], [shadow])
    production_class, shadow_class = label_of(production), label_of(shadow)
    return {
        "production_class": production_class,
        "shadow_class": shadow_class,
        "production_probability": float(production[production_class]),
        "shadow_probability": float(shadow[shadow_class]),
        "agreeing": production_class == shadow_class,
        "mean_probability_delta": numbers["mean_probability_delta"],
        "top1_probability_delta": numbers["mean_label_probability_delta"],
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
