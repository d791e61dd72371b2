"""Receivers of the other apps' signals: shadow mode samples logged predictions here.

`sample_for_shadow` runs on the request path (detection and classification: after the answer went
out; scoring: once its rows committed). It costs a dictionary lookup per prediction (shadow_plan caches its answer per
process), plus a random draw and one task publish when shadow mode is on and a staging version
exists. A broker or database that does not answer costs that sample (logged), never the prediction.
"""

import logging
import random

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from backend.monitoring.models import ShadowSettings
from backend.monitoring.services.shadow import forget_shadow_plans, shadow_plan
from backend.monitoring.tasks import compare_shadow
from backend.registry.signals import version_promoted, version_staged
from backend.serving.signals import prediction_logged

logger = logging.getLogger(__name__)

# A sample still queued after this long is dropped by the worker rather than compared: a backlog
# (a slow staging version at a high sample rate) must not grow without bound.
SAMPLE_EXPIRES_S = 600


@receiver(prediction_logged, dispatch_uid="monitoring.sample_for_shadow")
def sample_for_shadow(sender, kind, model_name, prediction_ids, **kwargs):
    try:
        plan = shadow_plan(model_name)
        if plan is None or random.random() >= plan.sample_rate:
            return
        compare_shadow.apply_async(
            kwargs={"kind": kind, "model_name": model_name, "prediction_ids": list(prediction_ids)},
            expires=SAMPLE_EXPIRES_S,
        )
    except Exception:  # whatever fails here, the prediction it samples has been answered
        logger.warning("shadow.sample_not_sent model=%s kind=%s", model_name, kind, exc_info=True)


@receiver(post_save, sender=ShadowSettings, dispatch_uid="monitoring.shadow_settings_saved")
@receiver(post_delete, sender=ShadowSettings, dispatch_uid="monitoring.shadow_settings_deleted")
@receiver(version_staged, dispatch_uid="monitoring.shadow_version_staged")
@receiver(version_promoted, dispatch_uid="monitoring.shadow_version_promoted")
def forget_plans(sender, **kwargs):
    """This process sees the change at once; the others within shadow.PLAN_TTL_S."""
    forget_shadow_plans()
