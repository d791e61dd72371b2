"""GET /health for load balancers and operators: the state of the services the product needs."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from backend.core.health import service_states


@require_GET
def health(request):
    """GET /health: 200 when the database, Redis and the MLflow store answer, else 503."""
    services = service_states()
    healthy = all(state["ok"] for state in services.values())
    body = {"status": "ok" if healthy else "unavailable", "services": services}
    return JsonResponse(body, status=200 if healthy else 503)
