"""The offline datasets: synthetic shapes (deterministic to the byte), synthetic table, breast cancer."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.data.synthetic import (
    ShapesSpec,
    TabularSpec,
    generate_shapes,
    generate_tabular,
    load_breast_cancer_table,
)
from mlops.exceptions import InvalidInput


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    spec = ShapesSpec(count=6, imgsz=96, seed=3)
    first = _files(generate_shapes(tmp_path / "a", spec))
    second = _files(generate_shapes(tmp_path / "b", spec))
    assert first == second
    assert len([name for name in first if name.startswith("images/")]) == 6

    other_seed = _files(generate_shapes(tmp_path / "c", ShapesSpec(count=6, imgsz=96, seed=4)))
    assert other_seed["images/shape_00000.jpg"] != first["images/shape_00000.jpg"]


def test_more_images_keep_the_first_ones(tmp_path):
    small = _files(generate_shapes(tmp_path / "small", ShapesSpec(count=3, imgsz=64, seed=1)))
    large = _files(generate_shapes(tmp_path / "large", ShapesSpec(count=5, imgsz=64, seed=1)))
    for name in small:
        if name.startswith(("images/", "labels/")):
            assert large[name] == small[name], name


def test_labels_are_normalised_boxes_of_the_configured_classes(tmp_path):
    from PIL import Image

    spec = ShapesSpec(classes=("star", "hexagon", "cross"), count=8, imgsz=128, seed=0, image_format="png")
    root = generate_shapes(tmp_path / "shapes", spec)
    info = json.loads((root / "dataset.json").read_text())
    assert info["names"] == ["star", "hexagon", "cross"]
    assert info["kind"] == "detection"
    seen = set()
    for label in sorted((root / "labels").glob("*.txt")):
        image = root / "images" / f"{label.stem}.png"
        assert Image.open(image).size == (128, 128)
        lines = label.read_text().splitlines()
        assert 1 <= len(lines) <= spec.max_objects
        for line in lines:
            cls, cx, cy, w, h = (float(v) for v in line.split())
            seen.add(int(cls))
            assert 0 <= cls < 3
            assert cx - w / 2 >= 0 and cx + w / 2 <= 1
            assert cy - h / 2 >= 0 and cy + h / 2 <= 1
            assert w >= spec.min_size * 0.5 and h >= spec.min_size * 0.5
    assert seen == {0, 1, 2}


def test_backgrounds_vary(tmp_path):
    from PIL import Image

    root = generate_shapes(tmp_path / "shapes", ShapesSpec(count=12, imgsz=64, seed=0))
    means = [np.asarray(Image.open(p)).mean() for p in sorted((root / "images").glob("*.jpg"))]
    assert np.std(means) > 5  # not one flat colour behind every object


def test_unknown_classes_and_bad_sizes_are_refused(tmp_path):
    with pytest.raises(InvalidInput):
        ShapesSpec(classes=("circle", "unicorn"))
    with pytest.raises(InvalidInput):
        ShapesSpec(min_size=0.5, max_size=0.2)
    with pytest.raises(InvalidInput):
        ShapesSpec.from_mapping({"colour": "red"})


def test_synthetic_table_carries_its_known_signal(tmp_path):
    root = generate_tabular(tmp_path / "table", TabularSpec(rows=2000, features=8, informative=3, seed=5))
    info = json.loads((root / "dataset.json").read_text())
    frame = pd.read_parquet(root / info["table"])
    assert list(frame.columns[-1:]) == ["target"]
    assert frame["n07"].dtype.kind == "i"  # the count-like features stay integers
    signal = sum(frame[name] * weight for name, weight in info["signal"].items())
    agreement = ((signal > 0).astype(int) == frame["target"]).mean()
    assert agreement > 0.85
    # A feature outside the signal carries none of it.
    assert abs(np.corrcoef(frame["x05"], frame["target"])[0, 1]) < 0.1
    again = generate_tabular(tmp_path / "again", TabularSpec(rows=2000, features=8, informative=3, seed=5))
    pd.testing.assert_frame_equal(frame, pd.read_parquet(again / "table.parquet"))


def test_breast_cancer_table_is_written_with_its_class_names(tmp_path):
    root = load_breast_cancer_table(tmp_path / "bc")
    info = json.loads((root / "dataset.json").read_text())
    frame = pd.read_parquet(root / info["table"])
    assert frame.shape == (569, 31)
    assert info["target"] == "target"
    assert info["class_names"] == ["malignant", "benign"]
    assert set(frame["target"].unique()) == {0, 1}
