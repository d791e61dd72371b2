"""Start-up checks: problems that should be visible before the first request."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Warning, register

from mlops.registry.health import check_store, redact_uri


@register()
def mlflow_store_check(app_configs, **kwargs):
    ok, detail = check_store(settings.MLFLOW_TRACKING_URI)
    if ok:
        return []
    return [
        Warning(
            f"MLflow store at {redact_uri(settings.MLFLOW_TRACKING_URI)} does not answer: {detail}",
            hint="Start the tracking server or fix MLFLOW_TRACKING_URI.",
            id="core.W001",
        )
    ]


@register()
def var_dir_check(app_configs, **kwargs):
    var_dir = Path(settings.VAR_DIR)
    if var_dir.is_dir():
        return []
    return [Warning(f"VAR_DIR {var_dir} is not a directory.", id="core.W002")]
