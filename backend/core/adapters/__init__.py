"""One module per third-party library whose private API the product relies on, each with a test that
fails the day the library changes it (backend/core/tests/test_adapter_*.py)."""
