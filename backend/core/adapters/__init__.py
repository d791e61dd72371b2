"""One module per third-party library whose private API we rely on, named after the library.

A private attribute is used only where no public API gives the same answer, only here, and each
module has a test (backend/core/tests/test_adapter_<library>.py) that fails the day the library
changes it.
"""
