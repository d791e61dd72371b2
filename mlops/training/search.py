"""Hyperparameter search with Optuna: N trials, median pruning, the best trial registered.

The search space lives in params.yaml (`search.tabular` / `search.detector`), one entry per
parameter::

    max_depth: {type: int, low: 2, high: 8}
    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
    batch: {type: categorical, choices: [8, 16]}

A parent MLflow run holds the search; each trial is a nested run. Trials report their validation
loss (tabular, per boosting round) or fitness (detector, per epoch) so the MedianPruner can stop
the weak ones early. Only the best trial is evaluated on the test split, registered and compared
with production: test data never steers the search.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.config import MlopsConfig
from mlops.data.prepare import PreparedDataset, load_prepared
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.registry.entities import ModelKind
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.training.params import DetectorParams, TabularParams, config_hash, load_params_file
from mlops.training.results import TrainingOutcome
from mlops.training.tracking import TrainingRun, scratch_dir, training_run

logger = logging.getLogger(__name__)

TrialCallback = Callable[[int, int, dict], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class SearchSettings:
    n_trials: int = 10
    seed: int = 0
    pruner: dict = field(default_factory=lambda: {"n_startup_trials": 3, "n_warmup_steps": 5})
    space: dict = field(default_factory=dict)

    @classmethod
    def resolve(cls, kind: str, overrides: Mapping[str, Any] | None, params_file=None) -> SearchSettings:
        section = dict(load_params_file(params_file).get("search") or {})
        values = {
            "n_trials": section.get("n_trials", 10),
            "seed": section.get("seed", 0),
            "pruner": section.get("pruner") or {"n_startup_trials": 3, "n_warmup_steps": 5},
            "space": section.get(kind) or {},
        }
        values.update({key: value for key, value in dict(overrides or {}).items() if value is not None})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"unknown search settings {unknown}", code="bad_params")
        settings = cls(**values)
        if settings.n_trials < 1 or not settings.space:
            raise InvalidInput(f"a {kind} search needs n_trials >= 1 and a search space", code="bad_params")
        return settings


@dataclass(frozen=True)
class SearchOutcome:
    """The registered best trial, and what every trial tried and scored."""

    best: TrainingOutcome
    parent_run_id: str
    best_trial: int
    best_value: float
    best_params: dict
    trials: tuple[dict, ...]
    duration_s: float

    def summary(self) -> dict:
        return {
            **self.best.summary(),
            "parent_run_id": self.parent_run_id,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "best_params": dict(self.best_params),
            "trials": [dict(trial) for trial in self.trials],
        }


def suggest(trial, space: Mapping[str, Mapping[str, Any]]) -> dict:
    """Draw one value per parameter of `space` (the params.yaml format above)."""
    values = {}
    for name, spec in space.items():
        kind = spec.get("type")
        if kind == "int":
            values[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)), log=bool(spec.get("log"))
            )
        elif kind == "float":
            values[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")), step=spec.get("step")
            )
        elif kind == "categorical":
            values[name] = trial.suggest_categorical(name, list(spec["choices"]))
        else:
            raise InvalidInput(f"search space entry {name!r} needs type int, float or categorical", code="bad_params")
    return values


def search_tabular(
    config: MlopsConfig,
    params: TabularParams | Mapping[str, Any] | None,
    dataset_dir: Path | str,
    *,
    model_name: str,
    n_trials: int | None = None,
    space: Mapping[str, Any] | None = None,
    pruner: Mapping[str, Any] | None = None,
    on_trial: TrialCallback | None = None,
    should_stop: StopCheck | None = None,
    description: str = "",
    params_file: Path | str | None = None,
) -> SearchOutcome:
    """Search XGBoost parameters (minimising validation log loss); register the best model."""
    from mlops.training import xgb

    base = TabularParams.resolve(params, params_file)
    settings = SearchSettings.resolve("tabular", {"n_trials": n_trials, "space": space, "pruner": pruner}, params_file)
    data = load_prepared(dataset_dir, kind="tabular")

    def run_trial(trial, trial_params: TabularParams, run: TrainingRun, workdir: Path):
        def on_round(done: int, val_loss: float) -> bool:
            trial.report(val_loss, done)
            return trial.should_prune()

        fit = xgb.fit_booster(trial_params, data, should_stop=should_stop, on_round=on_round)
        if fit.cancelled:
            raise TrainingCancelled(f"search of {model_name} was cancelled", details={"run_id": run.run_id})
        run.log_metric_history(fit.history)
        metric = next(key for key in fit.history if key.startswith("val/"))
        value = min(fit.history[metric]) if fit.history[metric] else float("inf")
        run.log_metrics({"val/best_loss": value, "rounds": fit.rounds, "best_round": fit.best_round})
        pruned = fit.rounds < trial_params.n_estimators and trial.should_prune()
        return value, pruned, fit

    def finish(run: TrainingRun, fit, trial_params: TabularParams, workdir: Path, started: float) -> TrainingOutcome:
        built = xgb.finish_tabular(run, fit.booster, data, workdir, rounds=fit.rounds, best_round=fit.best_round)
        registry = MlflowModelRegistry(config)
        return xgb.register_tabular(
            registry, run, built, data, model_name=model_name, description=description, started=started
        )

    return _search(
        config,
        kind=ModelKind.TABULAR,
        base=base,
        settings=settings,
        data=data,
        model_name=model_name,
        direction="minimize",
        run_trial=run_trial,
        finish=finish,
        on_trial=on_trial,
    )


def search_detector(
    config: MlopsConfig,
    params: DetectorParams | Mapping[str, Any] | None,
    dataset_dir: Path | str,
    *,
    model_name: str,
    n_trials: int | None = None,
    space: Mapping[str, Any] | None = None,
    pruner: Mapping[str, Any] | None = None,
    on_trial: TrialCallback | None = None,
    should_stop: StopCheck | None = None,
    description: str = "",
    params_file: Path | str | None = None,
) -> SearchOutcome:
    """Search YOLO training parameters (maximising validation fitness); register the best model."""
    from mlops.training import yolo

    base = DetectorParams.resolve(params, params_file)
    settings = SearchSettings.resolve("detector", {"n_trials": n_trials, "space": space, "pruner": pruner}, params_file)
    data = load_prepared(dataset_dir, kind="detection")

    def run_trial(trial, trial_params: DetectorParams, run: TrainingRun, workdir: Path):
        state = {"pruned": False}

        def on_fit_epoch(trainer) -> None:
            trial.report(float(trainer.fitness or 0.0), trainer.epoch + 1)
            if trial.should_prune():
                state["pruned"] = True
                trainer.stop = True

        fit = yolo.fit_detector(
            trial_params,
            data,
            workdir,
            experiment=config.experiment,
            run=run,
            should_stop=should_stop,
            on_fit_epoch=on_fit_epoch,
        )
        if fit.cancelled:
            raise TrainingCancelled(f"search of {model_name} was cancelled", details={"run_id": run.run_id})
        value = max((epoch.get("fitness", 0.0) for epoch in fit.history), default=0.0)
        run.log_metrics({"val/best_fitness": value, "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch})
        return value, state["pruned"], fit

    def finish(run: TrainingRun, fit, trial_params: DetectorParams, workdir: Path, started: float) -> TrainingOutcome:
        built = yolo.finish_detector(run, fit, trial_params, data, workdir)
        registry = MlflowModelRegistry(config)
        return yolo.register_detector(
            registry, run, built, trial_params, data, model_name=model_name, description=description, started=started
        )

    return _search(
        config,
        kind=ModelKind.DETECTION,
        base=base,
        settings=settings,
        data=data,
        model_name=model_name,
        direction="maximize",
        run_trial=run_trial,
        finish=finish,
        on_trial=on_trial,
        flatten=yolo.flat_params,
    )


@dataclass(frozen=True)
class _SearchPlan:
    """What one search is made of: where it logs, what it varies, how a trial trains and the best is finished."""

    registry: MlflowModelRegistry
    kind: ModelKind
    model_name: str
    base: Any
    settings: SearchSettings
    data: PreparedDataset
    run_trial: Callable
    finish: Callable
    flatten: Callable[[Any], dict]
    workdir: Path


@dataclass
class _TrialLog:
    """Every trial's record, reported as it ends, and the files of the best trial so far only."""

    direction: str
    total: int
    on_trial: TrialCallback | None
    records: list[dict] = field(default_factory=list)
    kept: dict[int, tuple[float, TrainingRun, Any, Any, Path]] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        """Record a finished trial and tell the caller (numbered from 1)."""
        self.records.append(record)
        if self.on_trial is not None:
            self.on_trial(record["number"] + 1, self.total, dict(record))

    def keep(self, number: int, value: float, run: TrainingRun, fit, trial_params, trial_dir: Path) -> None:
        """Keep a complete trial, then drop the files of every trial but the best (a detector trial holds weights)."""
        self.kept[number] = (value, run, fit, trial_params, trial_dir)
        pick = min if self.direction == "minimize" else max
        best = pick(self.kept, key=lambda n: self.kept[n][0])
        for other in [n for n in self.kept if n != best]:
            shutil.rmtree(self.kept.pop(other)[4], ignore_errors=True)


def _search(
    config: MlopsConfig,
    *,
    kind: ModelKind,
    base,
    settings: SearchSettings,
    data: PreparedDataset,
    model_name: str,
    direction: str,
    run_trial,
    finish,
    on_trial: TrialCallback | None,
    flatten=None,
) -> SearchOutcome:
    """Run the study under a parent MLflow run, then finish and register the best trial."""
    started = time.monotonic()
    config.apply_process_env()
    registry = MlflowModelRegistry(config)
    flatten = flatten or (lambda p: p.to_dict())
    _check_space(settings.space, base)
    workdir = scratch_dir(config, f"{model_name}-search-")
    plan = _SearchPlan(registry, kind, model_name, base, settings, data, run_trial, finish, flatten, workdir)
    log = _TrialLog(direction, settings.n_trials, on_trial)
    study = _create_study(settings, direction)
    search_params = _search_params(settings, direction, base, flatten)
    try:
        best_trial, parent_run_id = _run_study(plan, study, search_params, log)
        return _register_best(plan, study, best_trial, parent_run_id, log, started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _register_best(
    plan: _SearchPlan, study, best_trial, parent_run_id: str, log: _TrialLog, started: float
) -> SearchOutcome:
    """Finish the best trial (test-split evaluation, registration) and sum up what every trial did."""
    _, run, fit, trial_params, trial_dir = log.kept[best_trial.number]
    outcome = plan.finish(run, fit, trial_params, trial_dir, started)
    logger.info(
        "training.search_finished name=%s trials=%s best=%s value=%s version=%s",
        plan.model_name,
        len(study.trials),
        best_trial.number,
        best_trial.value,
        outcome.version.version,
    )
    return SearchOutcome(
        best=outcome,
        parent_run_id=parent_run_id,
        best_trial=best_trial.number,
        best_value=float(best_trial.value),
        best_params=dict(best_trial.params),
        trials=tuple(log.records),
        duration_s=time.monotonic() - started,
    )


def _check_space(space: Mapping[str, Any], base) -> None:
    """A search space may only vary parameters the trainer has."""
    unknown = sorted(set(space) - set(type(base).__dataclass_fields__))
    if unknown:
        raise InvalidInput(f"the search space names unknown parameters {unknown}", code="bad_params")


def _create_study(settings: SearchSettings, direction: str):
    """A quiet Optuna study: seeded TPE sampling, median pruning with the configured warm-up."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=optuna.pruners.MedianPruner(**settings.pruner),
    )


def _search_params(settings: SearchSettings, direction: str, base, flatten) -> dict:
    """What the parent run logs: the search settings and the base parameters every trial starts from."""
    return {
        "n_trials": settings.n_trials,
        "seed": settings.seed,
        "direction": direction,
        "pruner": settings.pruner,
        "space": settings.space,
        **{f"base.{key}": value for key, value in flatten(base).items()},
    }


def _run_study(plan: _SearchPlan, study, search_params: dict, log: _TrialLog) -> tuple[Any, str]:
    """Optimise inside the parent run and tag it with the best trial: (best trial, parent run id)."""
    import optuna

    with training_run(
        plan.registry,
        kind=plan.kind,
        run_name=f"{plan.model_name}-search",
        params=search_params,
        data_version=plan.data.data_version,
        config_hash=config_hash(search_params),
        tags={"modelyard.model_name": plan.model_name, "modelyard.search": "parent"},
    ) as parent:
        study.optimize(
            lambda trial: _objective(plan, parent.run_id, log, trial), n_trials=plan.settings.n_trials, catch=()
        )
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise InvalidInput("every trial was pruned; widen the search or add trials", code="search_empty")
        best_trial = study.best_trial
        parent.log_metrics({"best_value": best_trial.value, "best_trial": best_trial.number})
        parent.set_tags({"modelyard.best_trial_run": log.kept[best_trial.number][1].run_id})
    return best_trial, parent.run_id


def _objective(plan: _SearchPlan, parent_run_id: str, log: _TrialLog, trial) -> float:
    """One trial in its nested run: its value, or TrialPruned (its files dropped) when it was pruned."""
    import optuna

    sampled = suggest(trial, plan.settings.space)
    trial_params = type(plan.base).from_mapping({**plan.base.to_dict(), **sampled})
    trial_dir = plan.workdir / f"trial-{trial.number}"
    trial_dir.mkdir()
    with _trial_run(plan, parent_run_id, trial.number, trial_params) as run:
        value, pruned, fit = plan.run_trial(trial, trial_params, run, trial_dir)
        run.set_tags({"modelyard.trial_state": "pruned" if pruned else "complete"})
    record = {"number": trial.number, "params": sampled, "value": value, "run_id": run.run_id}
    if pruned:
        log.add({**record, "state": "pruned"})
        shutil.rmtree(trial_dir, ignore_errors=True)
        raise optuna.TrialPruned()
    log.add({**record, "state": "complete"})
    log.keep(trial.number, value, run, fit, trial_params, trial_dir)
    return value


def _trial_run(plan: _SearchPlan, parent_run_id: str, number: int, trial_params):
    """The trial's MLflow run, nested under the search's and tagged with its number."""
    return training_run(
        plan.registry,
        kind=plan.kind,
        run_name=f"{plan.model_name}-trial-{number}",
        params=plan.flatten(trial_params),
        data_version=plan.data.data_version,
        config_hash=trial_params.config_hash(),
        parent_run_id=parent_run_id,
        tags={"modelyard.model_name": plan.model_name, "modelyard.search": "trial", "trial": number},
    )
