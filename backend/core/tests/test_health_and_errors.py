import pytest
from django.test import override_settings

from tests.services import free_port

pytestmark = pytest.mark.django_db


def test_health_reports_every_service_ok(client):
    response = client.get("/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["services"]) == {"database", "redis", "mlflow"}
    assert all(service["ok"] for service in body["services"].values())


def test_health_is_503_when_redis_is_down(client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["services"]["redis"]["ok"] is False
    assert body["services"]["database"]["ok"] is True


def test_health_is_503_when_mlflow_store_is_down(client, tmp_path):
    with override_settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/missing-dir/mlflow.db"):
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["services"]["mlflow"]["ok"] is False


def test_unknown_url_answers_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_api_requires_authentication_with_json_body(client):
    response = client.get("/api/v1/models/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"openapi" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_malformed_json_is_a_json_400(admin_client):
    response = admin_client.post("/api/v1/models/", data="{not json", content_type="application/json")
    assert response.status_code in (400, 405)
    assert "error" in response.json()


@pytest.mark.django_db
def test_a_huge_page_limit_is_capped_not_a_server_error(admin_api):
    from tests.factories import TrainingJobFactory

    TrainingJobFactory.create_batch(3, model_name="paged")
    for url in ("/api/v1/training-jobs/", "/api/v1/detections/", "/api/v1/alerts/"):
        for query in ({"limit": str(10**30)}, {"offset": str(10**30)}):
            response = admin_api.get(url, query)
            assert response.status_code == 200, (url, query, response.content[:200])
    page = admin_api.get("/api/v1/training-jobs/", {"limit": str(10**30)}).json()
    assert page["count"] == 3 and len(page["results"]) == 3


def test_a_page_limit_or_offset_that_is_not_a_whole_number_in_range_is_a_400(admin_api):
    """As the schema says (limit 1 or more, offset 0 or more): not silently the first page."""
    for url in ("/api/v1/training-jobs/", "/api/v1/detections/", "/api/v1/alerts/"):
        for name, value in (("limit", "-5"), ("limit", "0"), ("limit", "many"), ("offset", "-1"), ("offset", "½")):
            response = admin_api.get(url, {name: value})
            assert response.status_code == 400, (url, name, value, response.content[:200])
            assert list(response.json()["error"]["fields"]) == [name]


def test_health_and_checks_never_show_a_password(client, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    secret = "s3cr3t-Pw"
    port = free_port()
    with override_settings(
        MLFLOW_TRACKING_URI=f"http://modelyard:{secret}@127.0.0.1:{port}",
        REDIS_URL=f"redis://:{secret}@127.0.0.1:{free_port()}/0",
    ):
        response = client.get("/health")
        out = StringIO()
        call_command("check", stdout=out, stderr=out)
    assert response.status_code == 503
    assert secret not in response.content.decode()
    assert secret not in out.getvalue() and f"modelyard:***@127.0.0.1:{port}" in out.getvalue()
