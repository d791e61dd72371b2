"""Alert rules as pure logic: when a condition breaches, how long it must last, and what happens next.

An alert moves pending -> firing -> (acknowledged) -> resolved, one open alert per rule and scope,
in the manner of Prometheus' alerting rules and Alertmanager:
- a breach opens a *pending* alert; it *fires* (and notifies) once the breach has lasted the
  rule's "for" duration (zero: at once);
- while the breach lasts, the open alert is updated, never duplicated;
- when the condition clears, a firing alert *resolves* by itself (and says so), a pending one is
  dropped without a word;
- after a resolution the rule stays quiet for its cooldown: a breach within it reopens the last
  alert without notifying again (flapping), instead of opening another.
`decide` is the whole state machine; the Django app stores rows and sends what it decides.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mlops.exceptions import InvalidInput


class Comparison(StrEnum):
    """How an observed value is compared with the threshold; a breach is the comparison holding."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="

    def holds(self, value: float, threshold: float) -> bool:
        return _OPERATORS[self](value, threshold)


_OPERATORS = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
}


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN_STATES = (AlertState.PENDING, AlertState.FIRING, AlertState.ACKNOWLEDGED)


class Action(StrEnum):
    """What to do with the alert rows after one observation."""

    NONE = "none"  # nothing open, nothing breached
    OPEN = "open"  # a new alert (pending, or firing when the rule has no "for" duration)
    UPDATE = "update"  # the open alert stays as it is, with the latest value
    FIRE = "fire"  # the pending alert lasted its "for" duration
    RESOLVE = "resolve"  # the condition cleared on a firing or acknowledged alert
    DROP = "drop"  # the condition cleared before a pending alert fired
    REOPEN = "reopen"  # a breach within the cooldown after the last resolution: quietly open again


@dataclass(frozen=True)
class Observation:
    """One reading of a rule's metric for one scope (a model, or the whole installation).

    `value` is None when there is nothing to judge (no traffic, fewer samples than the rule's
    minimum): that neither breaches nor clears, an open alert stays as it is.
    """

    scope: str
    value: float | None
    samples: int | None = None
    evidence: dict | None = None
    summary: str = ""


@dataclass(frozen=True)
class Condition:
    """A comparison against a threshold, with how long a breach must last and the quiet time after one."""

    comparison: Comparison
    threshold: float
    for_duration: timedelta = timedelta(0)
    cooldown: timedelta = timedelta(0)

    def __post_init__(self):
        if self.for_duration < timedelta(0) or self.cooldown < timedelta(0):
            raise InvalidInput("A rule's for duration and cooldown cannot be negative.", code="invalid_rule")

    @classmethod
    def build(
        cls, comparison: str, threshold: float, *, for_seconds: float = 0, cooldown_seconds: float = 0
    ) -> Condition:
        try:
            parsed = Comparison(comparison)
        except ValueError:
            choices = ", ".join(c.value for c in Comparison)
            raise InvalidInput(
                f"Unknown comparison {comparison!r}; use one of {choices}.", code="invalid_rule"
            ) from None
        return cls(parsed, float(threshold), timedelta(seconds=for_seconds), timedelta(seconds=cooldown_seconds))

    def breached(self, value: float | None) -> bool | None:
        """True or False; None when there is no value to judge."""
        return None if value is None else self.comparison.holds(value, self.threshold)

    def describe(self) -> str:
        return f"{self.comparison.value} {self.threshold:g}"


@dataclass(frozen=True)
class OpenAlert:
    """The open alert of a rule and scope, as far as the state machine needs it."""

    state: AlertState
    started_at: datetime


@dataclass(frozen=True)
class Decision:
    action: Action
    notify: bool = False  # send "firing" (OPEN at once, FIRE) or "resolved" (RESOLVE) on the channels

    @property
    def state(self) -> AlertState | None:
        """The state the alert is in afterwards (None: no alert row changes state)."""
        return _STATE_AFTER.get(self.action)


_STATE_AFTER = {
    Action.FIRE: AlertState.FIRING,
    Action.RESOLVE: AlertState.RESOLVED,
    Action.REOPEN: AlertState.FIRING,
}


def decide(
    condition: Condition,
    observation: Observation,
    *,
    current: OpenAlert | None,
    last_resolved_at: datetime | None,
    now: datetime,
) -> Decision:
    """The next step for one rule and scope given what was observed and what is open."""
    breached = condition.breached(observation.value)
    if current is None:
        if not breached:
            return Decision(Action.NONE)
        if last_resolved_at is not None and now - last_resolved_at < condition.cooldown:
            return Decision(Action.REOPEN)
        fires_now = condition.for_duration <= timedelta(0)
        return Decision(Action.OPEN, notify=fires_now)
    if breached is None:
        return Decision(Action.UPDATE)
    if breached:
        if current.state == AlertState.PENDING and now - current.started_at >= condition.for_duration:
            return Decision(Action.FIRE, notify=True)
        return Decision(Action.UPDATE)
    if current.state == AlertState.PENDING:
        return Decision(Action.DROP)
    return Decision(Action.RESOLVE, notify=True)


def opening_state(condition: Condition) -> AlertState:
    """The state a new alert starts in: firing at once without a "for" duration, pending with one."""
    return AlertState.FIRING if condition.for_duration <= timedelta(0) else AlertState.PENDING
