"""One error family with stable codes, mapped to HTTP responses in one place (backend.core.errors)."""


class MlopsError(Exception):
    """Base of every error the ML core raises on purpose.

    `code` is stable and machine-readable; `status` is the HTTP status a web caller should see.
    `private` is for operators only (file paths, a library's own error): logs and staff see it, an
    anonymous caller gets `message` alone.
    """

    code = "mlops_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None, private: str = ""):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}
        self.private = private


class InvalidInput(MlopsError):
    """The caller sent something we cannot use (bad image, missing feature...)."""

    code = "invalid_input"
    status = 400


class InputTooLarge(InvalidInput):
    code = "input_too_large"
    status = 413


class NotFound(MlopsError):
    code = "not_found"
    status = 404


class ModelNotFound(NotFound):
    """The registry has no model by that name."""

    code = "model_not_found"

    def __init__(self, model_name: str):
        super().__init__(f"There is no registered model named {model_name!r}.", details={"model": model_name})
        self.model_name = model_name


class ModelUnavailable(MlopsError):
    """No servable version (none promoted, or it failed to load)."""

    code = "model_unavailable"
    status = 503


class IntegrityError(MlopsError):
    """An artifact's sha256 does not match what the registry recorded."""

    code = "integrity_error"
    status = 409


class SmokeTestFailed(MlopsError):
    code = "smoke_test_failed"
    status = 409


class StoreUnavailable(MlopsError):
    """The MLflow store (or another backing service) does not answer."""

    code = "store_unavailable"
    status = 503


class DataValidationError(MlopsError):
    """A dataset failed validation; `details["report"]` holds the report."""

    code = "data_invalid"
    status = 400


class OfflineError(MlopsError):
    """A download needed the network (Kaggle, pretrained weights) and it is not there."""

    code = "offline"
    status = 503


class TrainingCancelled(MlopsError):
    code = "training_cancelled"
    status = 409
