"""Image descriptors for monitoring: cheap per image, computed on a small copy.

Evidently has no raw-image drift, so detector drift runs on tables of these numbers. Everything but
width and height is measured on a box-averaged copy whose longest side is at most FEATURE_SIDE
pixels, which keeps the cost near a millisecond whatever the upload size and keeps the values
comparable across sizes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from mlops.inference.images import source_size

FEATURE_SIDE = 256
FEATURE_NAMES = ("width", "height", "brightness", "contrast", "sharpness", "colourfulness")
BOX_DESCRIPTOR_NAMES = ("n_boxes", "mean_confidence", "max_confidence", "box_area_share")


def image_features(image: Image.Image) -> dict[str, float]:
    """Width, height, brightness (mean luma 0-255), contrast (std of luma), sharpness, colourfulness.

    Sharpness is the variance of a 4-neighbour Laplacian of the luma; colourfulness is Hasler and
    Süsstrunk's metric (0 for a grey image, ~100+ for saturated ones).
    """
    width, height = source_size(image)  # the upload's, also when it was decoded at a reduced scale
    small = _downscaled(image if image.mode == "RGB" else image.convert("RGB"))
    rgb = np.asarray(small, dtype=np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    return {
        "width": float(width),
        "height": float(height),
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "sharpness": _laplacian_variance(luma),
        "colourfulness": _colourfulness(red, green, blue),
    }


def _downscaled(image: Image.Image) -> Image.Image:
    """Box-average by the smallest whole factor that brings the longest side to FEATURE_SIDE or less.

    An integer reduction is several times cheaper than a resample to an exact size and averages
    every pixel (no aliasing), at the price of a longest side anywhere in (FEATURE_SIDE/2, FEATURE_SIDE].
    """
    factor = math.ceil(max(image.size) / FEATURE_SIDE)
    return image.reduce(factor) if factor > 1 else image


def _laplacian_variance(luma: np.ndarray) -> float:
    if luma.shape[0] < 3 or luma.shape[1] < 3:
        return 0.0
    centre = luma[1:-1, 1:-1]
    laplacian = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * centre
    return float(laplacian.var())


def _colourfulness(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> float:
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = np.hypot(rg.std(), yb.std())
    offset = np.hypot(rg.mean(), yb.mean())
    return float(spread + 0.3 * offset)


def box_descriptors(confidences: Sequence[float], boxes_xyxyn: Iterable[Sequence[float]]) -> dict[str, float]:
    """What a detector said about one image, as numbers drift can compare: one definition for both
    the training reference and the logged predictions, so the two tables can never disagree.

    n_boxes, mean and max confidence (0 without boxes), and box_area_share: the sum of the boxes'
    areas as fractions of the image (coordinates clipped to it), capped at 1.
    """
    confidences = [float(value) for value in confidences]
    area = sum(_clipped_area(box) for box in boxes_xyxyn)
    return {
        "n_boxes": len(confidences),
        "mean_confidence": sum(confidences) / len(confidences) if confidences else 0.0,
        "max_confidence": max(confidences) if confidences else 0.0,
        "box_area_share": min(area, 1.0),
    }


def _clipped_area(xyxyn: Sequence[float]) -> float:
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in xyxyn)
    return max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
