"""Whose feedback becomes training labels, the same rule for every prediction log that takes feedback.

Active staff (superusers too), and active holders of the `detection.trusted_feedback` permission,
given in the admin to a person or a group (reviewers who are not staff). The permission is declared
on detection's Feedback model, where it was first needed; classification's verdicts follow the same
rule, so a reviewer is trusted once, for both.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Q

TRUSTED_FEEDBACK_PERMISSION = "detection.trusted_feedback"


def is_trusted_reviewer(user) -> bool:
    """Whether `user`'s verdicts count as training labels (anonymous callers' never do)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.is_staff or user.has_perm(TRUSTED_FEEDBACK_PERMISSION))
    )


def trusted_reviewers() -> models.QuerySet:
    """The people `is_trusted_reviewer` says yes to, as one query (for exports over many verdicts)."""
    app_label, codename = TRUSTED_FEEDBACK_PERMISSION.split(".")
    holds = Q(user_permissions__codename=codename, user_permissions__content_type__app_label=app_label) | Q(
        groups__permissions__codename=codename, groups__permissions__content_type__app_label=app_label
    )
    return get_user_model().objects.filter(Q(is_active=True) & (Q(is_staff=True) | Q(is_superuser=True) | holds))
