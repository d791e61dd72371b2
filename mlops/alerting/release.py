"""Judging a fresh release against the version it replaced: should it be rolled back?

After a promotion the new version is watched for a while; each look compares its last minutes of
traffic with the previous version's own baseline (its last hour in production), so a model that
was always slow or error-prone is judged against itself, not against a fixed target.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Traffic:
    """What a version answered over a stretch of time."""

    requests: int
    errors: int
    latency_p95_ms: float | None = None

    @property
    def total(self) -> int:
        return self.requests + self.errors

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.total if self.total else None

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "latency_p95_ms": self.latency_p95_ms,
        }


@dataclass(frozen=True)
class ReleaseLimits:
    """How much worse than its predecessor a release may be before it is rolled back."""

    min_requests: int = 10  # fewer answered or failed requests than this: nothing to judge yet
    error_rate_margin: float = 0.05  # roll back above the baseline's error rate plus this
    latency_ratio: float | None = 2.0  # roll back above the baseline's p95 times this (None: latency not judged)


@dataclass(frozen=True)
class Verdict:
    breached: bool
    judged: bool
    reasons: list[str] = field(default_factory=list)


def judge_release(baseline: Traffic, current: Traffic, limits: ReleaseLimits) -> Verdict:
    """Breached when the release fails more, or answers slower, than the limits allow."""
    if current.total < max(limits.min_requests, 1):
        return Verdict(breached=False, judged=False)
    reasons = []
    allowed = (baseline.error_rate or 0.0) + limits.error_rate_margin
    if current.error_rate is not None and current.error_rate > allowed:
        reasons.append(
            f"error rate {current.error_rate:.1%} over {current.total} requests, above the previous version's "
            f"{baseline.error_rate or 0.0:.1%} + {limits.error_rate_margin:.1%}"
        )
    if limits.latency_ratio and baseline.latency_p95_ms and current.latency_p95_ms is not None:
        ceiling = baseline.latency_p95_ms * limits.latency_ratio
        if current.latency_p95_ms > ceiling:
            reasons.append(
                f"latency p95 {current.latency_p95_ms:.0f} ms, above {limits.latency_ratio:g} x the previous "
                f"version's {baseline.latency_p95_ms:.0f} ms"
            )
    return Verdict(breached=bool(reasons), judged=True, reasons=reasons)
