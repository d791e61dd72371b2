"""Registry events for webhook (and other) subscribers, through the outbox so each delivery is on record.

MLflow's registry webhooks fire and forget; here every event is a Notification row per subscribed
channel, retried with backoff, its outcome kept.
"""

from __future__ import annotations

from django.conf import settings

from backend.alerting.models import Channel, Notification
from backend.alerting.services.outbox import publish_event
from backend.registry.models import Deployment, ModelVersion, PromotionRequest
from mlops.alerting.channels import Message

Event = Channel.Event


def _version_payload(version: ModelVersion) -> dict:
    return {
        "model": version.model.name,
        "kind": version.model.kind,
        "version": version.version,
        "label": version.semantic_label,
        "status": version.status,
        "metrics": version.metrics,
        "git_commit": version.git_commit,
        "data_version": version.data_version,
        "mlflow_run_id": version.mlflow_run_id,
    }


def _version_url(version: ModelVersion) -> str:
    return f"{settings.SITE_URL}/admin/registry/modelversion/{version.pk}/change/"


def version_event(event: str, *, version_id: int, deployment_id: int | None = None) -> list[Notification]:
    """version.registered / version.staged / version.promoted / version.rolled_back."""
    version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
    if version is None:  # deleted before the event went out: nothing left to describe
        return []
    payload = {"version": _version_payload(version)}
    text = f"{version.model.name} {version.semantic_label} (MLflow version {version.version}) is now {version.status}."
    if deployment_id is not None:
        deployment = Deployment.objects.select_related("from_version", "actor").get(pk=deployment_id)
        previous = deployment.from_version
        payload["deployment"] = {
            "id": deployment.pk,
            "action": deployment.action,
            "actor": str(deployment.actor) if deployment.actor else None,
            "system": deployment.system,
            "reason": deployment.reason,
            "from_version": previous.version if previous else None,
            "created_at": deployment.created_at.isoformat(),
        }
        if previous is not None:
            text += f" It replaces {previous.semantic_label}."
        if deployment.reason:
            text += f" Reason: {deployment.reason}"
    word = event.split(".", 1)[1].replace("_", " ")
    message = Message(
        event=event,
        title=f"[info] {version.model.name} {version.semantic_label} {word}",
        text=text,
        url=_version_url(version),
        payload=payload,
    )
    return publish_event(event, message)


def promotion_requested(*, request_id: int) -> list[Notification]:
    request = PromotionRequest.objects.select_related("version__model", "requested_by").get(pk=request_id)
    version = request.version
    message = Message(
        event=Event.PROMOTION_REQUESTED,
        title=f"[info] approval asked: promote {version.model.name} {version.semantic_label}",
        text=f"{request.requested_by} asks to promote {version.model.name} {version.semantic_label} to production."
        + (f" Reason: {request.reason}" if request.reason else "")
        + " Another staff user must approve it.",
        url=_version_url(version),
        payload={
            "version": _version_payload(version),
            "request": request.pk,
            "requested_by": str(request.requested_by),
        },
    )
    return publish_event(Event.PROMOTION_REQUESTED, message)
