"""DVC stage entry points: `python -m mlops.pipeline.<stage>`, parameters from params.yaml.

ingest -> validate -> prepare -> train_detector -> train_tabular -> evaluate (dvc.yaml). Each
stage reads its own section of params.yaml and writes only the outputs dvc.yaml declares.
"""
