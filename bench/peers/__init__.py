"""Servers the HTTP bench measures the API against, each started in its own process."""
