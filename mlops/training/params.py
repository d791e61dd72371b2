"""Training parameters: typed, validated, hashed; defaults from params.yaml, overrides from the caller.

params.yaml (the DVC pipeline's parameter file) holds one section per trainer. A caller (a
training job, a DVC stage, a test) passes a mapping of overrides; unknown keys are refused so a
typo never trains silently with a default. The config hash is the sha256 of the canonical JSON of
the resolved parameters: two runs with the same hash trained with the same settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from mlops.exceptions import InvalidInput

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"

T = TypeVar("T", bound="_Params")


def load_params_file(path: Path | str | None = None) -> dict:
    """params.yaml as a dict ({} when the file is absent, e.g. in an installed package)."""
    import yaml

    path = Path(path) if path else PARAMS_FILE
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def config_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class _Params:
    SECTION = ""

    @classmethod
    def from_mapping(cls: type[T], values: Mapping[str, Any] | None) -> T:
        values = dict(values or {})
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidInput(f"unknown {cls.SECTION} parameters: {unknown}", code="bad_params")
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidInput(f"bad {cls.SECTION} parameters: {exc}", code="bad_params") from exc

    @classmethod
    def resolve(cls: type[T], params: T | Mapping[str, Any] | None, params_file: Path | str | None = None) -> T:
        """`params` as-is when typed; else the mapping over params.yaml's section over the defaults."""
        if isinstance(params, cls):
            return params
        base = load_params_file(params_file).get(cls.SECTION) or {}
        return cls.from_mapping({**base, **dict(params or {})})

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    def config_hash(self) -> str:
        return config_hash(self.to_dict())


@dataclass(frozen=True)
class YoloParams(_Params):
    """Ultralytics training settings shared by every YOLO task. `extra` passes any other train argument through."""

    model: str = "yolo26n.yaml"  # architecture yaml (from scratch) or a .pt checkpoint
    weights: str = ""  # pretrained weights: a local path, or a name Ultralytics can download
    epochs: int = 30
    imgsz: int = 160
    batch: int = 16
    patience: int = 10
    seed: int = 0
    lr0: float = 0.01
    optimizer: str = "auto"
    workers: int = 0
    device: str = "cpu"
    plots: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.imgsz < 32 or self.imgsz % 32 or self.batch == 0:
            raise InvalidInput(
                f"{self.SECTION}: epochs >= 1, imgsz a multiple of 32 (>= 32) and batch != 0 are required",
                code="bad_params",
            )
        reserved = {"data", "project", "name", "exist_ok", "resume", "task"} & set(self.extra)
        if reserved:
            raise InvalidInput(f"{self.SECTION}.extra cannot set {sorted(reserved)}", code="bad_params")

    @property
    def architecture(self) -> str:
        return Path(self.model).stem

    def ultralytics_args(self) -> dict:
        """The keyword arguments of `YOLO.train` these parameters stand for."""
        return {
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            # One optimizer step per batch. Ultralytics' nominal batch of 64 accumulates 4 batches
            # of 16: a small dataset then gets a quarter of the steps per epoch.
            "nbs": self.batch if self.batch > 0 else 64,
            "patience": self.patience,
            "seed": self.seed,
            "lr0": self.lr0,
            "optimizer": self.optimizer,
            "workers": self.workers,
            "device": self.device,
            "plots": self.plots,
            **self.extra,
        }


@dataclass(frozen=True)
class DetectorParams(YoloParams):
    """Ultralytics detection training settings (params.yaml `train_detector`)."""

    SECTION = "train_detector"

    model: str = "yolo26n.yaml"
    reference_conf: float = 0.25  # confidence threshold of the drift reference outputs (serving's default)


# Classification architectures this product is measured with; any other "-cls" yaml or checkpoint works too.
CLASSIFIER_MODELS = ("yolo11n-cls.yaml", "yolo26n-cls.yaml", "yolo11-cls-resnet18.yaml")

# The classifier's default Ultralytics arguments beyond the named fields (params.yaml repeats them).
# From scratch on a few hundred small images, Ultralytics' classify defaults (RandAugment, 40%
# random erasing, strong colour jitter, three warm-up epochs, a 0.1 bias learning rate) keep the
# model near chance; light augmentation and one warm-up epoch let it learn in a minute.
CLASSIFIER_EXTRA = {
    "auto_augment": None,
    "erasing": 0.0,
    "hsv_s": 0.3,
    "hsv_v": 0.3,
    "scale": 0.2,
    "warmup_epochs": 1.0,
    "warmup_bias_lr": 0.0,
}


@dataclass(frozen=True)
class ClassifierParams(YoloParams):
    """Ultralytics classification training settings (params.yaml `train_classifier`).

    `model` is a classify architecture: a `-cls` yaml (from scratch, see CLASSIFIER_MODELS) or a
    `.pt` checkpoint (a path, or an Ultralytics asset name such as yolo11n-cls.pt, downloaded when
    the network allows, else the same architecture from scratch). The defaults train yolo11n-cls
    from scratch on params.yaml's 600 synthetic 64 px shape images to a test top-1 of 1.0 in about
    80 s on two CPU cores (data, training, export and evaluation): AdamW at 5e-4 (Ultralytics'
    "auto" picks 1.4e-3 here, too high to learn from scratch), batches of 16 (more steps), 15
    epochs and CLASSIFIER_EXTRA's light augmentation. A job's own `extra` is laid over that mapping
    key by key (give a key Ultralytics' own value to undo one).
    """

    SECTION = "train_classifier"

    model: str = "yolo11n-cls.yaml"
    epochs: int = 15
    imgsz: int = 64
    batch: int = 16
    lr0: float = 0.0005
    optimizer: str = "AdamW"
    extra: dict = field(default_factory=lambda: dict(CLASSIFIER_EXTRA))

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", {**CLASSIFIER_EXTRA, **(self.extra or {})})
        super().__post_init__()
        path = Path(self.model)
        if path.suffix not in (".yaml", ".yml", ".pt"):
            raise InvalidInput(
                f"train_classifier.model is a -cls yaml or a .pt checkpoint, not {self.model!r}", code="bad_params"
            )
        if path.suffix != ".pt" and "-cls" not in path.stem:
            raise InvalidInput(
                f"train_classifier.model {self.model!r} is not a classification architecture: "
                f"use one of {list(CLASSIFIER_MODELS)} (or another '-cls' yaml)",
                code="bad_params",
            )


@dataclass(frozen=True)
class TabularParams(_Params):
    """XGBoost settings; boosting stops early when validation log loss stops improving."""

    SECTION = "train_tabular"

    n_estimators: int = 500
    max_depth: int = 4
    learning_rate: float = 0.1
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    seed: int = 0
    nthread: int = 2

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.max_depth < 1 or not 0 < self.learning_rate <= 1:
            raise InvalidInput("n_estimators >= 1, max_depth >= 1 and 0 < learning_rate <= 1", code="bad_params")

    def booster_params(self, n_classes: int) -> dict:
        objective = {"objective": "binary:logistic", "eval_metric": "logloss"}
        if n_classes > 2:
            objective = {"objective": "multi:softprob", "eval_metric": "mlogloss", "num_class": n_classes}
        return {
            **objective,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "seed": self.seed,
            "nthread": self.nthread,
            "tree_method": "hist",
        }
