"""The detection app's services, one module per job: detect (the prediction path), pictures (the
stored upload read back), rendering (boxes and heatmaps drawn), feedback, feedback_export,
batches, retention."""
