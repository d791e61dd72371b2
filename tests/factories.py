"""Test data built by factories (factory_boy): people, registered versions of real tiny models, jobs.

Versions go through the real registry (MLflow store, sha256, semantic labels, smoke-tested
promotion): `VersionFactory(name=..., kind="detection", files=model_files["detectors"][0])`, with
`promoted=True` to put it in production.
"""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory

from backend.training.models import TrainingJob


class UserFactory(DjangoModelFactory):
    """A signed-in person; `staff=True` / `superuser=True` for the admin's people."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    class Params:
        staff = factory.Trait(is_staff=True)
        superuser = factory.Trait(is_staff=True, is_superuser=True)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")

    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        """`password=` sets it; the default is pw-<username>-123."""
        user.set_password(extracted or f"pw-{user.username}-123")
        if create:
            user.save()


class VersionFactory(factory.Factory):
    """A registered ModelVersion of tiny real model files (tests.models), promoted when asked."""

    class Meta:
        model = dict  # built through the registry's services, never constructed directly

    name = factory.Sequence(lambda n: f"factory-model-{n}")
    kind = "detection"
    files = None
    metrics = factory.LazyAttribute(lambda v: {"mAP50": 0.5} if v.kind == "detection" else {"accuracy": 0.9})
    promoted = False

    @classmethod
    def _create(cls, model_class, *, name, kind, files, metrics, promoted):
        from backend.registry.services import promote_version, register_from_files

        version = register_from_files(name, kind, files.files(), metrics=metrics, metadata=files.metadata)
        if promoted:
            promote_version(version, reason="test")
            version.refresh_from_db()
        return version

    _build = _create


class TrainingJobFactory(DjangoModelFactory):
    """A job row as the API would create it, not enqueued; `running=True` for one a worker claimed
    (`since=` when it started and last beat)."""

    class Meta:
        model = TrainingJob

    class Params:
        since = factory.LazyFunction(timezone.now)
        running = factory.Trait(
            status=TrainingJob.Status.RUNNING,
            started_at=factory.SelfAttribute("since"),
            heartbeat_at=factory.SelfAttribute("since"),
        )

    kind = TrainingJob.Kind.TABULAR
    model_name = factory.Sequence(lambda n: f"factory-job-model-{n}")
    dataset = factory.LazyAttribute(
        lambda job: {
            TrainingJob.Kind.DETECTION: "synthetic:shapes",
            TrainingJob.Kind.CLASSIFICATION: "synthetic:classification",
        }.get(job.kind, "sklearn:breast_cancer")
    )
