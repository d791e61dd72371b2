"""The alert state machine, step by step: pending, firing, updates, resolution, cooldown."""

from datetime import UTC, datetime, timedelta

import pytest

from mlops.alerting.rules import Action, AlertState, Condition, Observation, OpenAlert, decide, opening_state
from mlops.exceptions import InvalidInput

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def step(condition, value, *, current=None, last_resolved_at=None, now=NOW):
    return decide(condition, Observation("m", value), current=current, last_resolved_at=last_resolved_at, now=now)


def test_a_breach_fires_at_once_without_a_for_duration():
    condition = Condition.build(">", 0.05)
    decision = step(condition, 0.2)
    assert (decision.action, decision.notify) == (Action.OPEN, True)
    assert opening_state(condition) == AlertState.FIRING
    assert step(condition, 0.01).action == Action.NONE
    assert step(condition, 0.05).action == Action.NONE  # > is strict


def test_a_breach_must_last_its_for_duration_before_firing():
    condition = Condition.build("<", 0.3, for_seconds=300)
    assert opening_state(condition) == AlertState.PENDING
    opened = step(condition, 0.1)
    assert (opened.action, opened.notify) == (Action.OPEN, False)
    pending = OpenAlert(AlertState.PENDING, NOW)
    assert step(condition, 0.1, current=pending, now=NOW + timedelta(seconds=299)).action == Action.UPDATE
    fired = step(condition, 0.1, current=pending, now=NOW + timedelta(seconds=300))
    assert (fired.action, fired.notify, fired.state) == (Action.FIRE, True, AlertState.FIRING)
    # Cleared before it fired: dropped without a word.
    dropped = step(condition, 0.9, current=pending, now=NOW + timedelta(seconds=100))
    assert (dropped.action, dropped.notify) == (Action.DROP, False)


def test_an_open_alert_is_updated_then_resolves_by_itself():
    condition = Condition.build(">=", 1)
    firing = OpenAlert(AlertState.FIRING, NOW)
    assert step(condition, 1, current=firing).action == Action.UPDATE
    assert step(condition, None, current=firing).action == Action.UPDATE  # nothing to judge: stays open
    resolved = step(condition, 0, current=firing)
    assert (resolved.action, resolved.notify, resolved.state) == (Action.RESOLVE, True, AlertState.RESOLVED)
    acknowledged = OpenAlert(AlertState.ACKNOWLEDGED, NOW)
    assert step(condition, 0, current=acknowledged).action == Action.RESOLVE


def test_within_the_cooldown_a_new_breach_reopens_quietly():
    condition = Condition.build(">=", 1, cooldown_seconds=600)
    resolved_at = NOW - timedelta(seconds=599)
    reopened = step(condition, 1, last_resolved_at=resolved_at)
    assert (reopened.action, reopened.notify, reopened.state) == (Action.REOPEN, False, AlertState.FIRING)
    after = step(condition, 1, last_resolved_at=NOW - timedelta(seconds=600))
    assert (after.action, after.notify) == (Action.OPEN, True)


def test_no_value_never_opens_an_alert():
    assert step(Condition.build("<", 0.5), None).action == Action.NONE


def test_bad_rules_are_refused():
    with pytest.raises(InvalidInput, match="Unknown comparison"):
        Condition.build("!=", 1)
    with pytest.raises(InvalidInput, match="negative"):
        Condition.build(">", 1, cooldown_seconds=-1)
