"""Signals monitoring sends after commit; receivers (alerting) only enqueue work."""

from django.dispatch import Signal

# Sent when a drift check flagged drift: report (a monitoring.DriftReport row).
drift_detected = Signal()
