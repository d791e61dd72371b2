"""What a training request means and whether it can run: the kind's defaults, the split of a job's
params into trainer and data options, and the checks the API serializer, the admin's start form,
the `train` command and `services.start_job` all apply before a job is queued.

The checks are cheap (nothing is downloaded) and use the classes that will consume the params, so
a typo is refused at the door instead of training with defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from backend.registry.models import RegisteredModel
from backend.training.datasets import pipeline_defaults
from backend.training.models import TrainingJob
from mlops.data.prepare import SplitSpec
from mlops.data.synthetic import ClassificationSpec, ShapesSpec, TabularSpec
from mlops.data.validate import ValidationPolicy
from mlops.exceptions import InvalidInput
from mlops.training.params import ClassifierParams, DetectorParams, TabularParams

Kind = TrainingJob.Kind

# Keys of job params that configure the data rather than the trainer.
DATA_PARAM_KEYS = ("data", "split", "validate")
# Search jobs: which trainer the trials run, how many, and (optionally) the space over params.yaml's.
SEARCH_PARAM_KEYS = ("target", "trials", "space")
# The kinds a search can tune (mlops.training.search has no classifier search).
SEARCH_TARGETS = (Kind.DETECTION, Kind.TABULAR)
# The ingest options each source scheme reads (mlops.data.ingest); synthetic sources take their spec's.
INGEST_OPTION_KEYS = {"kaggle": {"target", "timeout"}, "folder": {"target"}, "sklearn": set(), "": {"target"}}
DEFAULT_DATASETS = {
    Kind.DETECTION: "synthetic:shapes",
    Kind.CLASSIFICATION: "synthetic:classification",
    Kind.TABULAR: "sklearn:breast_cancer",
}
# The generated and bundled sources each kind of model trains on (any kind: Kaggle, a folder, a prepared set).
BUILT_IN_SOURCES = {
    Kind.DETECTION: ("synthetic:shapes",),
    Kind.CLASSIFICATION: ("synthetic:classification",),
    Kind.TABULAR: ("sklearn:breast_cancer", "synthetic:tabular"),
}
# The trainer parameters of each kind of model (params.yaml's train_detector, train_classifier, train_tabular).
TRAINER_PARAMS = {Kind.DETECTION: DetectorParams, Kind.CLASSIFICATION: ClassifierParams, Kind.TABULAR: TabularParams}
_KAGGLE_HANDLE = re.compile(r"^kaggle:[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/versions/\d+)?$")
_MODEL_NAME = re.compile(r"[-a-zA-Z0-9_]+")
# Who may ask for auto_promote: the registry's promote permission (checked by start_job and the admin form).
AUTO_PROMOTE_DOING = "start a training job that promotes its version by itself (auto_promote)"
AUTO_PROMOTE_NEEDS_PERMISSION = (
    "Promoting automatically needs the registry's promote permission; leave it off and the new version is "
    "staged for review."
)
# The trigger of a job started by code with no person behind it (a command) that did not name one.
SYSTEM_TRIGGER = "started by the system"


# -- what a request means --------------------------------------------------------------------------
def default_model_name(kind: str) -> str:
    if kind == Kind.TABULAR:
        return settings.DEFAULT_TABULAR_MODEL
    if kind == Kind.CLASSIFICATION:
        return settings.DEFAULT_CLASSIFICATION_MODEL
    return settings.DEFAULT_DETECTION_MODEL


def trainer_kind(kind: str, params: dict | None) -> str:
    """The kind of model a job produces: its own kind, or a search's `target` (tabular by default)."""
    if kind == Kind.SEARCH:
        return str((params or {}).get("target") or Kind.TABULAR)
    return kind


def steps_param(kind: str, params: dict | None) -> str:
    """The trainer param a job's step count sets: boosting rounds (tabular) or epochs (detection, classification)."""
    return "n_estimators" if trainer_kind(kind, params) == Kind.TABULAR else "epochs"


def split_params(params: dict | None, *, search: bool = False) -> tuple[dict, dict]:
    """(trainer overrides, data options) out of a job's params; a search's own settings left out."""
    params = dict(params or {})
    data = {key: params.pop(key) for key in DATA_PARAM_KEYS if key in params}
    if search:
        for key in SEARCH_PARAM_KEYS:
            params.pop(key, None)
    return params, data


# -- whether it can run ----------------------------------------------------------------------------
def check_job_request(kind: str, *, model_name: str = "", dataset: str = "", params: dict | None = None) -> dict:
    """Problems with a job request, by field ({} when it is fine). Cheap: nothing is downloaded."""
    if kind not in Kind.values:
        return {"kind": f"unknown kind {kind!r}: choose from {', '.join(Kind.values)}"}
    if params is not None and not isinstance(params, dict):
        return {"params": "params must be a JSON object"}
    params = dict(params or {})
    target = trainer_kind(kind, params)
    if kind == Kind.SEARCH and target not in SEARCH_TARGETS:
        if target == Kind.CLASSIFICATION:
            return {"params": "params.target: a search cannot tune a classification model; use detection or tabular"}
        return {"params": f"params.target must be detection or tabular, not {target!r}"}
    problems: dict[str, str] = {}
    dataset = dataset or DEFAULT_DATASETS[target]
    if problem := _dataset_problem(target, dataset):
        problems["dataset"] = problem
    if problem := _model_name_problem(target, model_name or default_model_name(target)):
        problems["model_name"] = problem
    if not problems.get("dataset") and (problem := _params_problem(kind, target, dataset, params)):
        problems["params"] = problem
    return problems


def raise_for_problems(problems: dict) -> None:
    """InvalidInput naming the first problem, with all of them by field."""
    if problems:
        field_name, message = next(iter(problems.items()))
        raise InvalidInput(f"{field_name}: {message}", code="bad_job_request", details={"fields": problems})


def _dataset_problem(target: str, dataset: str) -> str:
    scheme, _, rest = dataset.partition(":")
    if scheme == "kaggle":
        return "" if _KAGGLE_HANDLE.match(dataset) else "a Kaggle source looks like kaggle:OWNER/DATASET"
    if scheme in ("synthetic", "sklearn"):
        allowed = BUILT_IN_SOURCES[target]
        if dataset not in allowed:
            return f"{dataset!r} cannot train a {target} model: use {' or '.join(allowed)}"
        return ""
    path = Path(rest) if scheme == "folder" else Path(dataset)
    if scheme not in ("folder", "") and not path.is_absolute() and not dataset.startswith("."):
        return (
            f"unknown dataset {dataset!r}: use synthetic:shapes, synthetic:classification, sklearn:breast_cancer, "
            "synthetic:tabular, kaggle:OWNER/DATASET, folder:PATH or the path of a prepared dataset"
        )
    if not path.is_dir():
        return f"no dataset folder at {path}"
    return ""


def _model_name_problem(target: str, model_name: str) -> str:
    if not _MODEL_NAME.fullmatch(model_name):
        return "a model name holds letters, digits, '-' and '_' only"
    existing = RegisteredModel.objects.filter(name=model_name).values_list("kind", flat=True).first()
    if existing and existing != target:
        return f"{model_name!r} is a {existing} model; this job trains a {target} model"
    return ""


def _params_problem(kind: str, target: str, dataset: str, params: dict) -> str:
    """The first problem in `params`, checked with the same classes that will consume them."""
    trainer_params, data = split_params(params, search=kind == Kind.SEARCH)
    for key in DATA_PARAM_KEYS:
        if key in data and not isinstance(data[key], dict):
            return f"params.{key} must be a JSON object"
    trainer_class = TRAINER_PARAMS[target]
    defaults = pipeline_defaults(dataset, kind=target)
    try:
        base = trainer_class.resolve(trainer_params)
        if kind == Kind.SEARCH and (problem := _search_problem(params, base)):
            return problem
        return _data_problem(dataset, data, defaults)
    except InvalidInput as exc:
        return exc.message
    except (TypeError, ValueError) as exc:
        return f"bad params: {exc}"


def _data_problem(dataset: str, data: dict, defaults: dict[str, dict]) -> str:
    """The data options (ingest, split, validation) over params.yaml's: a problem, or the specs' own error."""
    ingest_options = {**defaults["ingest"], **data.get("data", {})}
    if dataset == "synthetic:shapes":
        ShapesSpec.from_mapping(ingest_options)
    elif dataset == "synthetic:classification":
        ClassificationSpec.from_mapping(ingest_options)
    elif dataset == "synthetic:tabular":
        TabularSpec.from_mapping(ingest_options)
    elif unknown := sorted(set(data.get("data", {})) - INGEST_OPTION_KEYS.get(dataset.partition(":")[0], set())):
        return f"params.data: {dataset} takes no options {unknown}"
    SplitSpec.from_mapping({**defaults["split"], **data.get("split", {})})
    ValidationPolicy.from_mapping({**defaults["validate"], **data.get("validate", {})})
    return ""


def _search_problem(params: dict, base) -> str:
    trials = params.get("trials", 1)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        return "params.trials must be a positive integer"
    space = params.get("space")
    if space is not None:
        if not isinstance(space, dict) or not all(isinstance(spec, dict) for spec in space.values()):
            return 'params.space maps parameter names to {"type": "int|float|categorical", ...}'
        unknown = sorted(set(space) - set(type(base).__dataclass_fields__))
        if unknown:
            return f"params.space names unknown parameters {unknown}"
    return ""
