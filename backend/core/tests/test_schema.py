"""The house rules of the OpenAPI schema (backend.core.schema), read off the schema /api/schema/ serves.

tests/test_api_schema.py holds the running server to the schema; these say what the schema promises.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db]


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def responses(schema, method: str, path: str) -> dict:
    return schema["paths"][path][method]["responses"]


def test_every_error_status_answers_with_the_error_body(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert list(response["content"]) == ["application/json"], (method, path, code)
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)


def test_statuses_follow_from_permissions_path_input_and_throttles(schema):
    staff_detail = responses(schema, "get", "/api/v1/training-jobs/{id}/")
    assert {"401", "403", "404"} <= set(staff_detail) and "400" not in staff_detail
    signed_in_list = responses(schema, "get", "/api/v1/models/")
    assert {"400", "401"} <= set(signed_in_list) and "403" not in signed_in_list  # limit and offset are input
    upload = responses(schema, "post", "/api/v1/detections/")
    assert {"400", "401", "413", "415", "429"} <= set(upload)
    picture = responses(schema, "get", "/api/v1/detections/{id}/image.jpg")
    assert {"404", "429"} <= set(picture) and list(picture["200"]["content"]) == ["image/jpeg"]


def test_open_operations_say_anonymous_callers_may_use_them(schema):
    assert {} in schema["paths"]["/api/v1/detections/"]["post"]["security"]
    assert {} not in schema["paths"]["/api/v1/detections/"]["get"]["security"]
    assert {} not in schema["paths"]["/api/v1/training-jobs/"]["get"]["security"]


def test_lists_are_pages(schema):
    for path in ("/api/v1/detections/", "/api/v1/batches/", "/api/v1/models/", "/api/v1/alerts/"):
        body = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        page = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        assert {"count", "results"} <= set(page["properties"]), path
        limit = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert limit["schema"] == {"type": "integer", "minimum": 1}


def test_answers_that_can_be_null_say_so(schema):
    components = schema["components"]["schemas"]
    assert components["Deployment"]["properties"]["actor"]["nullable"] is True  # a command or policy did it
    assert components["Alert"]["properties"]["acknowledged_by"]["nullable"] is True
    assert components["TrainingJob"]["properties"]["requested_by"]["nullable"] is True
    assert "nullable" not in components["Alert"]["properties"]["rule"]


def test_uploads_are_binary_parts_and_required_lists_not_empty(schema):
    components = schema["components"]["schemas"]
    assert components["DetectionRequest"]["properties"]["image"]["format"] == "binary"
    assert components["DetectionRequest"]["required"] == ["image"]
    files = components["BatchRequest"]["properties"]["files"]
    assert files["items"]["format"] == "binary" and files["minItems"] == 1
    assert components["ScoreRequest"]["properties"]["records"]["minItems"] == 1
