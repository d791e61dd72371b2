"""Signals serving sends, and the one every prediction endpoint sends; receivers only enqueue work."""

from django.dispatch import Signal

# Sent once per failure when a production version failed to load (the first process to record it
# sends it): model_name, version (the ModelVersion's number), error.
model_load_failed = Signal()

# Sent by detection, scoring and classification after their prediction log committed (detection and
# classification: once the answer went out and the image's descriptors were saved): kind
# ("detection", "tabular" or "classification"), model_name, version_id (the ModelVersion that
# answered), prediction_ids (Detection or Classification ids, or the TabularPrediction ids of one
# call, as strings). Monitoring samples these for shadow mode; a
# receiver must be cheap and must never raise.
prediction_logged = Signal()
