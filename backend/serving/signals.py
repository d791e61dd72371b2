"""Signals serving sends; receivers (alerting) only enqueue work."""

from django.dispatch import Signal

# Sent once per failure when a production version failed to load (the first process to record it
# sends it): model_name, version (the ModelVersion's number), error.
model_load_failed = Signal()
