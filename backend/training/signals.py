"""Signals training sends after commit; receivers (alerting) only enqueue work."""

from django.dispatch import Signal

# Sent once when a job ended failed (by its worker or by the reaper): job_id, code, message.
training_job_failed = Signal()
