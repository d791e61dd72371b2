"""The classification app's services, one module per job: classify (the prediction path), feedback,
pictures (the stored upload read back as a thumbnail)."""
