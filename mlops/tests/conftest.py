"""Fixtures shared by several mlops test modules."""

from mlops.tests.classifier_support import classifier_files  # noqa: F401  (session-scoped: one build for all modules)
