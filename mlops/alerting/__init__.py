"""Alerting in plain Python: the rules that decide when an alert fires, and the channels that deliver it."""
