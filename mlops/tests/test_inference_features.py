"""Image descriptors for monitoring behave like the quantities they are named after."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from mlops.inference.features import BOX_DESCRIPTOR_NAMES, FEATURE_NAMES, box_descriptors, image_features
from mlops.tests.test_inference_detector import asset


def checkerboard(size: int = 256, square: int = 16) -> Image.Image:
    cells = (np.indices((size, size)) // square).sum(axis=0) % 2
    gray = (cells * 200 + 28).astype(np.uint8)
    return Image.fromarray(np.stack([gray] * 3, axis=-1))


def test_every_feature_is_a_float():
    features = image_features(Image.open(asset("bus.jpg")).convert("RGB"))
    assert tuple(features) == FEATURE_NAMES
    assert all(isinstance(value, float) and np.isfinite(value) for value in features.values())
    assert (features["width"], features["height"]) == (810.0, 1080.0)


def test_brightness_and_contrast():
    dark = image_features(Image.new("RGB", (300, 200), (20, 20, 20)))
    light = image_features(Image.new("RGB", (300, 200), (230, 230, 230)))
    assert dark["brightness"] == pytest.approx(20, abs=0.5)
    assert light["brightness"] == pytest.approx(230, abs=0.5)
    assert dark["contrast"] == pytest.approx(0, abs=1e-3)
    board = image_features(checkerboard())
    assert board["contrast"] == pytest.approx(100, abs=2)  # half 28, half 228


def test_blur_lowers_sharpness():
    sharp = checkerboard()
    blurred = sharp.filter(ImageFilter.GaussianBlur(6))
    assert image_features(blurred)["sharpness"] < image_features(sharp)["sharpness"] / 5
    photo = Image.open(asset("bus.jpg")).convert("RGB")
    assert image_features(photo.filter(ImageFilter.GaussianBlur(4)))["sharpness"] < image_features(photo)["sharpness"]


def test_colourfulness():
    gray = image_features(checkerboard())
    assert gray["colourfulness"] == pytest.approx(0, abs=1e-3)
    stripes = np.zeros((256, 256, 3), dtype=np.uint8)
    stripes[:, ::2] = (255, 0, 0)
    stripes[:, 1::2] = (0, 0, 255)
    vivid = image_features(Image.fromarray(stripes))
    photo = image_features(Image.open(asset("bus.jpg")).convert("RGB"))
    assert vivid["colourfulness"] > photo["colourfulness"] > 10


def test_features_do_not_depend_much_on_upload_size():
    photo = Image.open(asset("bus.jpg")).convert("RGB")
    big = photo.resize((1620, 2160), Image.Resampling.BICUBIC)
    a, b = image_features(photo), image_features(big)
    assert b["width"] == 2 * a["width"]
    for name in ("brightness", "contrast", "colourfulness"):
        assert b[name] == pytest.approx(a[name], rel=0.05)


def test_non_rgb_input_and_tiny_images():
    tiny = image_features(Image.new("L", (2, 2), 90))
    assert tiny["sharpness"] == 0.0 and tiny["brightness"] == pytest.approx(90, abs=0.5)


def test_box_descriptors_summarise_what_the_detector_found():
    found = box_descriptors([0.9, 0.5], [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.5, 1.0]])
    assert found == pytest.approx({"n_boxes": 2, "mean_confidence": 0.7, "max_confidence": 0.9, "box_area_share": 0.5})
    assert box_descriptors([], []) == {
        "n_boxes": 0,
        "mean_confidence": 0.0,
        "max_confidence": 0.0,
        "box_area_share": 0.0,
    }
    assert tuple(found) == BOX_DESCRIPTOR_NAMES
