"""The framework-free ML core: data, training, registry, inference, monitoring, alerting.

Nothing in this package imports django, rest_framework or celery; the Django apps call in.
"""
