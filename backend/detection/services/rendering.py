"""Pictures made from a detection: boxes drawn on the image, and a confidence heatmap.

Rendered on demand from the stored upload (decoded by the same `decode_image` the model saw), so
the stored files stay the upload itself and a small thumbnail.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Distinct, readable colours for class ids (cycled).
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
)
# Heatmap working resolution: the density is smooth, so a small grid upscaled looks the same.
HEATMAP_GRID = 192


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def visible_boxes(boxes: list[dict], min_confidence: float) -> list[dict]:
    return [box for box in boxes if box["confidence"] >= min_confidence]


def annotate(image: Image.Image, boxes: list[dict]) -> Image.Image:
    """The image with each box outlined in its class colour and labelled "class 0.87"."""
    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    width = max(2, round(side / 320))
    font = ImageFont.load_default(size=max(11, round(side / 45)))
    for box in sorted(boxes, key=lambda b: b["confidence"]):
        colour = class_colour(box["class_id"])
        x1, y1, x2, y2 = box["xyxy"]
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = f"{box['class_name']} {box['confidence']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        lift = bottom - top + 2 * width
        y_text = y1 - lift if y1 - lift >= 0 else y1
        draw.rectangle((x1, y_text, x1 + (right - left) + 2 * width, y_text + lift), fill=colour)
        draw.text((x1 + width, y_text + width - (top - y1)), text, fill=(255, 255, 255), font=font)
    return canvas


def confidence_density(boxes: list[dict], width: int, height: int, grid: int = HEATMAP_GRID) -> np.ndarray:
    """Sum of one Gaussian per box (centred on it, spread by its size, weighted by its confidence).

    Returned on a grid whose longest side is `grid` cells, scaled to 0-1 (all zeros without boxes).
    """
    scale = grid / max(width, height)
    cols, rows = max(1, round(width * scale)), max(1, round(height * scale))
    ys = (np.arange(rows, dtype=np.float32) + 0.5) / rows
    xs = (np.arange(cols, dtype=np.float32) + 0.5) / cols
    density = np.zeros((rows, cols), dtype=np.float32)
    for box in boxes:
        x1, y1, x2, y2 = box["xyxyn"]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        sx, sy = max((x2 - x1) / 4, 0.5 / cols), max((y2 - y1) / 4, 0.5 / rows)
        gx = np.exp(-0.5 * ((xs - cx) / sx) ** 2)
        gy = np.exp(-0.5 * ((ys - cy) / sy) ** 2)
        density += np.float32(box["confidence"]) * np.outer(gy, gx)
    peak = float(density.max())
    return density / peak if peak > 0 else density


def _colour_ramp(values: np.ndarray) -> np.ndarray:
    """Map 0-1 to a dark-blue -> cyan -> yellow -> red ramp (RGB uint8)."""
    stops = np.array([0.0, 0.35, 0.65, 1.0], dtype=np.float32)
    colours = np.array([[20, 30, 140], [0, 200, 220], [250, 230, 40], [230, 20, 20]], dtype=np.float32)
    flat = values.ravel()
    rgb = np.stack([np.interp(flat, stops, colours[:, channel]) for channel in range(3)], axis=1)
    return rgb.reshape((*values.shape, 3)).astype(np.uint8)


def heatmap(image: Image.Image, boxes: list[dict], opacity: float = 0.6) -> Image.Image:
    """The image dimmed, with the confidence density drawn over it (transparent where there is none)."""
    density = confidence_density(boxes, image.width, image.height)
    colour = Image.fromarray(_colour_ramp(density)).resize(image.size, Image.Resampling.BILINEAR)
    alpha = Image.fromarray(np.clip(density * 255 * opacity, 0, 255).astype(np.uint8)).resize(
        image.size, Image.Resampling.BILINEAR
    )
    base = Image.blend(image, Image.new("RGB", image.size, (0, 0, 0)), 0.35)
    base.paste(colour, mask=alpha)
    return base
