"""Datasets that need no network: synthetic shapes (for detection and for classification), a
synthetic table, scikit-learn's breast cancer.

The image sets are deterministic: the same parameters give byte-identical files. A detection
image `i` depends only on (seed, i), a classification image `i` of class `c` only on (seed, c, i),
so asking for more images (or more classes) keeps the existing ones unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mlops.data.layout import reset_dir, write_dataset_info
from mlops.exceptions import InvalidInput

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star", "cross")
BACKGROUNDS = ("noise", "gradient", "stripes", "checker", "blotches")
OUTLINES = ("shade", "dark")
DARK_OUTLINE = (16, 16, 16)
TABLE_FILE = "table.parquet"


@dataclass(frozen=True)
class ShapesSpec:
    """What the synthetic detection set looks like; every field takes part in its content."""

    classes: tuple[str, ...] = ("circle", "square", "triangle")
    # 480 images of 160 px: the default detector (yolo26n, 160 px, 30 epochs) reaches a test mAP50
    # of 0.91 in about nine minutes on two busy CPU cores; docs/data-and-training.md has the figures.
    count: int = 480
    imgsz: int = 160
    seed: int = 0
    max_objects: int = 4
    min_size: float = 0.10  # object side as a fraction of the image side
    max_size: float = 0.35
    empty_fraction: float = 0.0  # share of images with no object (background only)
    image_format: str = "jpg"

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        unknown = [name for name in self.classes if name not in SHAPES]
        if unknown or not self.classes:
            raise InvalidInput(f"unknown shape classes {unknown}; choose from {list(SHAPES)}", code="bad_params")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidInput("shape classes must be distinct", code="bad_params")
        if self.count < 1 or self.imgsz < 32 or self.max_objects < 1:
            raise InvalidInput("count >= 1, imgsz >= 32 and max_objects >= 1 are required", code="bad_params")
        if not 0 < self.min_size <= self.max_size < 1:
            raise InvalidInput("0 < min_size <= max_size < 1 is required", code="bad_params")
        if self.image_format not in ("jpg", "png"):
            raise InvalidInput("image_format is jpg or png", code="bad_params")

    @classmethod
    def from_mapping(cls, values: dict | None) -> ShapesSpec:
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown synthetic shapes parameters {unknown}", code="bad_params")
        if "classes" in values:
            values["classes"] = tuple(values["classes"])
        return cls(**values)


def generate_shapes(dest: Path, spec: ShapesSpec | None = None) -> Path:
    """Write the synthetic shapes set into `dest` in the raw detection layout; return `dest`."""
    from PIL import Image

    spec = spec or ShapesSpec()
    dest = reset_dir(Path(dest))
    images_dir, labels_dir = dest / "images", dest / "labels"
    images_dir.mkdir()
    labels_dir.mkdir()
    for index in range(spec.count):
        rng = np.random.default_rng([spec.seed, index])
        canvas = _background(rng, spec.imgsz)
        objects = [] if rng.random() < spec.empty_fraction else _draw_objects(rng, canvas, spec)
        stem = f"shape_{index:05d}"
        _save(Image.fromarray(canvas, mode="RGB"), images_dir / stem, spec.image_format)
        lines = [f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for cls, cx, cy, w, h in objects]
        (labels_dir / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    write_dataset_info(
        dest,
        {"kind": "detection", "names": list(spec.classes), "source": "synthetic:shapes", "params": asdict(spec)},
    )
    logger.info("data.synthetic_shapes_written dest=%s count=%s imgsz=%s", dest, spec.count, spec.imgsz)
    return dest


# -- classification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationSpec:
    """The synthetic classification set: one shape per image, its class the shape's, on a textured background.

    Shapes vary in size, place, rotation and colour, and backgrounds are the detection set's
    textures (noise, gradients, stripes, checkers, blotches), so only the outline tells the classes apart.

    The field defaults are the hardest set: any rotation, full-contrast textures, a thin outline a
    shade darker than the fill; yolo11n-cls trained from scratch for a few minutes of CPU stays near
    chance on it. params.yaml's `data.classification` is the set `make run` trains on, learnable in
    about a minute: upright shapes, a thick dark outline, backgrounds at 0.3 contrast (colours
    still random, so the shape alone gives the class).
    """

    classes: tuple[str, ...] = ("circle", "square", "triangle")
    per_class: int = 100  # images of each class
    imgsz: int = 64
    seed: int = 0
    min_size: float = 0.35  # shape side as a fraction of the image side
    max_size: float = 0.8
    backgrounds: tuple[str, ...] = BACKGROUNDS
    image_format: str = "jpg"
    # Each shape turns by a random angle in [0, rotation) degrees; 0: squares upright, triangles pointing right.
    rotation: float = 360.0
    outline: str = "shade"  # the outline's colour: "shade" (the fill, darker) or "dark" (near black, whatever the fill)
    outline_width: int = 1  # pixels
    background_contrast: float = 1.0  # 1: the textures as drawn; lower flattens them towards their mean colour

    def __post_init__(self) -> None:
        object.__setattr__(self, "backgrounds", tuple(self.backgrounds))
        if not self.backgrounds or set(self.backgrounds) - set(BACKGROUNDS):
            raise InvalidInput(f"backgrounds are some of {list(BACKGROUNDS)}", code="bad_params")
        # Sorted: Ultralytics numbers a classify dataset's classes by their sorted folder names.
        object.__setattr__(self, "classes", tuple(sorted(self.classes)))
        unknown = [name for name in self.classes if name not in SHAPES]
        if unknown or len(self.classes) < 2:
            raise InvalidInput(
                f"at least two shape classes are needed, from {list(SHAPES)}; unknown: {unknown}", code="bad_params"
            )
        if len(set(self.classes)) != len(self.classes):
            raise InvalidInput("shape classes must be distinct", code="bad_params")
        if self.per_class < 1 or self.imgsz < 16:
            raise InvalidInput("per_class >= 1 and imgsz >= 16 are required", code="bad_params")
        if not 0 < self.min_size <= self.max_size <= 1:
            raise InvalidInput("0 < min_size <= max_size <= 1 is required", code="bad_params")
        if self.image_format not in ("jpg", "png"):
            raise InvalidInput("image_format is jpg or png", code="bad_params")
        if not 0 <= self.rotation <= 360 or not 0 <= self.background_contrast <= 1:
            raise InvalidInput("0 <= rotation <= 360 and 0 <= background_contrast <= 1 are required", code="bad_params")
        if self.outline not in OUTLINES or not 1 <= self.outline_width <= self.imgsz // 4:
            raise InvalidInput(
                f"outline is one of {list(OUTLINES)} and 1 <= outline_width <= imgsz / 4", code="bad_params"
            )

    @classmethod
    def from_mapping(cls, values: dict | None) -> ClassificationSpec:
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"unknown synthetic classification parameters {unknown}", code="bad_params")
        for key in ("classes", "backgrounds"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    @property
    def count(self) -> int:
        return self.per_class * len(self.classes)


def generate_classification(dest: Path, spec: ClassificationSpec | None = None) -> Path:
    """Write the synthetic classification set into `dest` in the raw classification layout; return `dest`."""
    from PIL import Image, ImageDraw

    spec = spec or ClassificationSpec()
    dest = reset_dir(Path(dest))
    size = spec.imgsz
    for name in spec.classes:
        folder = dest / name
        folder.mkdir()
        for index in range(spec.per_class):
            rng = np.random.default_rng([spec.seed, _stable_id(name), index])
            background = _background(rng, size, spec.backgrounds)
            if spec.background_contrast != 1:
                mean = background.mean(axis=(0, 1), keepdims=True)
                background = np.clip(mean + (background - mean) * spec.background_contrast, 0, 255).astype(np.uint8)
            image = Image.fromarray(background, mode="RGB")
            side = rng.uniform(spec.min_size, spec.max_size) * size
            cx, cy = rng.uniform(side / 2, size - side / 2, size=2)
            points = _outline(name, cx, cy, side / 2, rng.uniform(0, math.radians(spec.rotation)))
            colour = _vivid_colour(rng)
            outline = DARK_OUTLINE if spec.outline == "dark" else tuple(max(c - 60, 0) for c in colour)
            ImageDraw.Draw(image).polygon(
                [tuple(p) for p in points], fill=colour, outline=outline, width=spec.outline_width
            )
            _save(image, folder / f"{name}_{index:05d}", spec.image_format)
    write_dataset_info(
        dest,
        {
            "kind": "classification",
            "names": list(spec.classes),
            "source": "synthetic:classification",
            "params": asdict(spec),
        },
    )
    logger.info(
        "data.synthetic_classification_written dest=%s classes=%s per_class=%s imgsz=%s",
        dest,
        len(spec.classes),
        spec.per_class,
        spec.imgsz,
    )
    return dest


def _stable_id(name: str) -> int:
    """A number for a class name that does not depend on the process (Python's hash() does)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _save(image, stem: Path, image_format: str) -> Path:
    if image_format == "jpg":
        path = stem.with_suffix(".jpg")
        image.save(path, format="JPEG", quality=90, subsampling=0)
    else:
        path = stem.with_suffix(".png")
        image.save(path, format="PNG", compress_level=6)
    return path


# -- backgrounds ------------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int, kinds: tuple[str, ...] = BACKGROUNDS) -> np.ndarray:
    kind = kinds[int(rng.integers(len(kinds)))]
    a, b = rng.integers(0, 256, size=(2, 3))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "noise":
        base = rng.integers(0, 256, size=3)
        noise = rng.normal(0, rng.uniform(15, 60), size=(size, size, 3))
        image = base + noise
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle)) / 1.5 + 0.5
        image = a + (b - a) * np.clip(t, 0, 1)[..., None]
    elif kind == "stripes":
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(0.03, 0.2)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
        image = a + (b - a) * t[..., None]
    elif kind == "checker":
        cells = int(rng.integers(4, 16))
        t = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
        image = a + (b - a) * t[..., None]
    else:  # blotches: low-frequency noise upsampled, a texture unlike the shapes' flat fills
        from PIL import Image

        grid = int(rng.integers(3, 8))
        coarse = (rng.uniform(0, 1, size=(grid, grid)) * 255).astype(np.uint8)
        fine = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR)) / 255.0
        image = a + (b - a) * fine[..., None]
    image = image + rng.normal(0, 4, size=(size, size, 3))  # a little sensor noise everywhere
    return np.clip(image, 0, 255).astype(np.uint8)


# -- objects ----------------------------------------------------------------------------------


def _draw_objects(rng: np.random.Generator, canvas: np.ndarray, spec: ShapesSpec) -> list[tuple]:
    from PIL import Image, ImageDraw

    size = spec.imgsz
    image = Image.fromarray(canvas, mode="RGB")
    draw = ImageDraw.Draw(image)
    placed: list[tuple[float, float, float, float]] = []
    objects = []
    wanted = int(rng.integers(1, spec.max_objects + 1))
    for _ in range(wanted * 10):  # a few tries per object: boxes never overlap, so none is hidden
        if len(objects) == wanted:
            break
        cls = int(rng.integers(len(spec.classes)))
        side = rng.uniform(spec.min_size, spec.max_size) * size
        cx, cy = rng.uniform(side / 2, size - side / 2, size=2)
        rotation = rng.uniform(0, 2 * math.pi)
        points = _outline(spec.classes[cls], cx, cy, side / 2, rotation)
        x0, y0 = points[:, 0].min(), points[:, 1].min()
        x1, y1 = points[:, 0].max(), points[:, 1].max()
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, size - 1.0), min(y1, size - 1.0)
        box = (x0, y0, x1, y1)
        if any(_overlaps(box, other) for other in placed):
            continue
        colour = _vivid_colour(rng)
        draw.polygon([tuple(p) for p in points], fill=colour, outline=tuple(max(c - 60, 0) for c in colour))
        placed.append(box)
        objects.append((cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    canvas[...] = np.asarray(image)
    return objects


def _outline(shape: str, cx: float, cy: float, radius: float, rotation: float) -> np.ndarray:
    """The shape's polygon (a circle is a 48-gon) centred on (cx, cy)."""
    if shape == "circle":
        angles, radii = np.linspace(0, 2 * math.pi, 48, endpoint=False), np.full(48, radius)
    elif shape == "square":
        angles, radii = np.arange(4) * math.pi / 2 + math.pi / 4 + rotation, np.full(4, radius)
    elif shape == "triangle":
        angles, radii = np.arange(3) * 2 * math.pi / 3 + rotation, np.full(3, radius)
    elif shape == "diamond":
        angles, radii = np.arange(4) * math.pi / 2 + rotation, np.array([1.0, 0.6, 1.0, 0.6]) * radius
    elif shape == "hexagon":
        angles, radii = np.arange(6) * math.pi / 3 + rotation, np.full(6, radius)
    elif shape == "star":
        angles, radii = np.arange(10) * math.pi / 5 + rotation, np.tile([1.0, 0.45], 5) * radius
    else:  # cross: a plus sign of 12 corners
        arm = radius / 3
        local = np.array(
            [(-arm, -radius), (arm, -radius), (arm, -arm), (radius, -arm), (radius, arm), (arm, arm),
             (arm, radius), (-arm, radius), (-arm, arm), (-radius, arm), (-radius, -arm), (-arm, -arm)]
        )  # fmt: skip
        rot = np.array([[math.cos(rotation), -math.sin(rotation)], [math.sin(rotation), math.cos(rotation)]])
        return local @ rot.T + (cx, cy)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def _vivid_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour, so objects stand out from most backgrounds whatever their class."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _overlaps(a: tuple, b: tuple, margin: float = 2.0) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1])


# -- tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularSpec:
    """A binary table with a known linear signal in the first `informative` features."""

    rows: int = 5000
    features: int = 20
    informative: int = 5
    int_features: int = 2  # the last columns hold small integers (counts), to exercise "int" dtypes
    noise: float = 0.5
    seed: int = 0
    weights: tuple[float, ...] = field(default=())

    @classmethod
    def from_mapping(cls, values: dict | None) -> TabularSpec:
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"unknown synthetic tabular parameters {unknown}", code="bad_params")
        return cls(**values)


def generate_tabular(dest: Path, spec: TabularSpec | None = None) -> Path:
    """Write `table.parquet` + `dataset.json`; the true coefficients are recorded in the latter."""
    import pandas as pd

    spec = spec or TabularSpec()
    if not 0 < spec.informative <= spec.features - spec.int_features or spec.rows < 10:
        raise InvalidInput("need rows >= 10 and 0 < informative <= features - int_features", code="bad_params")
    rng = np.random.default_rng(spec.seed)
    weights = np.asarray(
        spec.weights or rng.uniform(0.8, 2.0, spec.informative) * rng.choice([-1, 1], spec.informative)
    )
    x = rng.normal(0, 1, size=(spec.rows, spec.features))
    logit = x[:, : spec.informative] @ weights + rng.normal(0, spec.noise, spec.rows)
    target = (logit > 0).astype(np.int64)
    columns = {f"x{i:02d}": x[:, i] for i in range(spec.features - spec.int_features)}
    for i in range(spec.features - spec.int_features, spec.features):
        columns[f"n{i:02d}"] = rng.poisson(3, spec.rows).astype(np.int64)
    frame = pd.DataFrame(columns)
    frame["target"] = target
    dest = reset_dir(Path(dest))
    frame.to_parquet(dest / TABLE_FILE, index=False)
    write_dataset_info(
        dest,
        {
            "kind": "tabular",
            "source": "synthetic:tabular",
            "table": TABLE_FILE,
            "target": "target",
            "class_names": ["negative", "positive"],
            "signal": {f"x{i:02d}": float(w) for i, w in enumerate(weights)},
            "params": {**asdict(spec), "weights": [float(w) for w in weights]},
        },
    )
    logger.info("data.synthetic_tabular_written dest=%s rows=%s", dest, spec.rows)
    return dest


def load_breast_cancer_table(dest: Path) -> Path:
    """scikit-learn's bundled breast-cancer table (569 rows, 30 features), no network needed."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame
    dest = reset_dir(Path(dest))
    frame.to_parquet(dest / TABLE_FILE, index=False)
    write_dataset_info(
        dest,
        {
            "kind": "tabular",
            "source": "sklearn:breast_cancer",
            "table": TABLE_FILE,
            "target": "target",
            "class_names": [str(name) for name in bunch.target_names],
        },
    )
    logger.info("data.breast_cancer_written dest=%s rows=%s", dest, len(frame))
    return dest
