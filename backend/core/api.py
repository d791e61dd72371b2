"""GET /health for load balancers and operators; GET /metrics for Prometheus."""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from backend.core.clients import in_networks, parse_address
from backend.core.errors import error_body
from backend.core.health import service_states
from backend.core.metrics import CONTENT_TYPE, exposition

# A request that came through a proxy says so; its address is then the proxy's, not the client's.
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


@require_GET
def health(request):
    """GET /health: 200 when the database, Redis and the MLflow store answer, else 503."""
    services = service_states()
    healthy = all(state["ok"] for state in services.values())
    body = {"status": "ok" if healthy else "unavailable", "services": services}
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
def metrics(request):
    """GET /metrics: the metrics of every web and Celery process, for the scrapers METRICS_ALLOW or
    METRICS_TOKEN admit; anyone else gets the API's 403 body."""
    if not (_has_token(request) or _from_allowed_network(request)):
        message = "Metrics are for the networks in METRICS_ALLOW or callers with METRICS_TOKEN."
        return JsonResponse(error_body("permission_denied", message), status=403)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)


def _has_token(request) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def _from_allowed_network(request) -> bool:
    if any(header in request.headers for header in PROXY_HEADERS):
        return False
    address = parse_address(request.META.get("REMOTE_ADDR", ""))
    return address is not None and in_networks(address, settings.METRICS_ALLOW)
