"""Serving: models run on ONNX Runtime in processes that never import torch, xgboost or mlflow."""
