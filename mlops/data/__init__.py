"""Datasets: ingest (Kaggle, synthetic, scikit-learn), validate, split and version.

Detection datasets use one layout everywhere (see `mlops.data.layout`); tabular datasets are a
table plus a `dataset.json` naming the target and the class names.
"""
