"""What a training hands back to its caller (a job, a DVC stage, a benchmark)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from mlops.registry.entities import ModelVersionInfo


@dataclass(frozen=True)
class VersionComparison:
    """The new version against the one holding `production`, both scored on the same test split.

    verdict: "better" / "worse" / "equal" on `primary_metric` (higher is better), "no_baseline"
    when nothing is in production, "not_comparable" when the two models cannot be scored on the
    same data (different classes or features; `reason` says which).
    """

    candidate_version: int
    baseline_version: int | None
    verdict: str
    primary_metric: str
    data_version: str
    split: str = "test"
    candidate: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingOutcome:
    """A registered version, its test metrics, how it compares with production, and its run."""

    version: ModelVersionInfo
    metrics: dict[str, float]
    comparison: VersionComparison
    run_id: str
    duration_s: float
    epochs_run: int = 0  # epochs (detector) or boosting rounds (tabular) actually trained
    best_epoch: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (fit, export, ...)

    def summary(self) -> dict:
        """Plain JSON-able values: what a job row or a metrics file stores."""
        return {
            "model_name": self.version.name,
            "version": self.version.version,
            "run_id": self.run_id,
            "metrics": dict(self.metrics),
            "comparison": self.comparison.to_dict(),
            "duration_s": round(self.duration_s, 3),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "timings": {phase: round(seconds, 3) for phase, seconds in self.timings.items()},
            "data_version": self.version.lineage.data_version,
            "config_hash": self.version.lineage.config_hash,
        }


class PhaseTimer:
    """Wall time per phase of a training: where the time beyond the fit itself goes."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - started
