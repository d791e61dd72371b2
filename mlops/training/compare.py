"""Compare a freshly registered version with the production one, on the candidate's test split.

The kind-specific part (how to score the production model on this data) is a callable the
trainer passes in; this module finds the baseline, turns the two metric sets into deltas and a
verdict, and records the result on the version (an MLflow model-version tag) and in the run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from mlops.exceptions import MlopsError
from mlops.registry.entities import PRODUCTION_ALIAS, ModelVersionInfo
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.training.results import VersionComparison

logger = logging.getLogger(__name__)

TAG_COMPARISON = "modelyard.comparison"
_EQUAL = 1e-9


class NotComparable(MlopsError):
    """The production model cannot be scored on the candidate's data (other classes or features)."""

    code = "not_comparable"
    status = 409


def compare_with_production(
    registry: MlflowModelRegistry,
    candidate: ModelVersionInfo,
    candidate_metrics: dict[str, float],
    *,
    primary_metric: str,
    data_version: str,
    score_baseline: Callable[[ModelVersionInfo], dict[str, float]],
) -> VersionComparison:
    """Score the production version with `score_baseline` and set it against the candidate."""
    baseline_version = registry.alias_version(candidate.name, PRODUCTION_ALIAS)
    common = {
        "candidate_version": candidate.version,
        "primary_metric": primary_metric,
        "data_version": data_version,
        "candidate": dict(candidate_metrics),
    }
    if baseline_version is None:
        comparison = VersionComparison(baseline_version=None, verdict="no_baseline", **common)
    elif baseline_version == candidate.version:
        comparison = VersionComparison(
            baseline_version=baseline_version, verdict="equal", reason="the candidate is production", **common
        )
    else:
        baseline = registry.get_version(candidate.name, baseline_version)
        try:
            baseline_metrics = score_baseline(baseline)
        except NotComparable as exc:
            comparison = VersionComparison(
                baseline_version=baseline_version, verdict="not_comparable", reason=exc.message, **common
            )
        else:
            deltas = {
                key: candidate_metrics[key] - baseline_metrics[key]
                for key in sorted(set(candidate_metrics) & set(baseline_metrics))
            }
            delta = deltas.get(primary_metric)
            if delta is None:
                verdict = "not_comparable"
            else:
                verdict = "equal" if abs(delta) <= _EQUAL else "better" if delta > 0 else "worse"
            comparison = VersionComparison(
                baseline_version=baseline_version,
                verdict=verdict,
                baseline=dict(baseline_metrics),
                deltas=deltas,
                **common,
            )
    logger.info(
        "training.compared name=%s candidate=%s baseline=%s verdict=%s",
        candidate.name,
        candidate.version,
        comparison.baseline_version,
        comparison.verdict,
    )
    return comparison


def record_comparison(registry: MlflowModelRegistry, comparison: VersionComparison, name: str, run_id: str) -> None:
    """Keep the comparison with the version (tag) and with the run that produced it (artifact)."""
    payload = comparison.to_dict()
    registry.client.set_model_version_tag(name, str(comparison.candidate_version), TAG_COMPARISON, json.dumps(payload))
    registry.client.log_dict(run_id, payload, "comparison.json")


def promotion_allowed(comparison: dict, *, margin: float = 0.0) -> tuple[bool, str]:
    """May a trained version replace production by itself? Only when it wins on the same holdout.

    Nothing in production: yes. Otherwise the primary metric (higher is better) must beat
    production's by at least `margin`; a comparison that could not be made never promotes.
    """
    verdict = comparison.get("verdict")
    if verdict == "no_baseline":
        return True, "nothing in production to compare with"
    metric = comparison.get("primary_metric", "")
    delta = (comparison.get("deltas") or {}).get(metric)
    if verdict not in ("better", "equal", "worse") or delta is None:
        reason = comparison.get("reason") or "no comparison with production"
        return False, f"not comparable with production ({reason})"
    if delta >= margin:
        return True, f"{metric} {delta:+.4f} against production (margin {margin:+.4f})"
    return False, f"{metric} {delta:+.4f} against production, short of the margin {margin:+.4f}"
