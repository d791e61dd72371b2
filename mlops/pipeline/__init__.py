"""DVC stage entry points: `python -m mlops.pipeline.<stage>`, parameters from params.yaml.

ingest -> validate -> prepare -> train_detector, train_classifier, train_tabular -> evaluate
(dvc.yaml; evaluate re-scores the registered versions). Each stage reads its own section of
params.yaml and writes only the outputs dvc.yaml declares.
"""
