"""The OpenAPI schema's house rules, applied to every operation of the API.

What a view would otherwise have to repeat, and forgets: the error statuses its authentication,
permissions, path, input and throttles can answer, each with the error body of backend.core.errors;
fields an answer can carry as null; uploads as binary parts; any other body as JSON only. Views still
declare what only they know (409, 410, 503, their own 400 and 403 codes): their declarations win, and
get the error body when they name none.

SPECTACULAR_SETTINGS["DEFAULT_GENERATOR_CLASS"] names SchemaGenerator, which gives every view these
rules on top of the schema class drf-spectacular picked for it (its @extend_schema included).
"""

from __future__ import annotations

import functools

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import FieldDoesNotExist
from drf_spectacular import generators
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import append_meta, build_basic_type
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.fields import ProhibitNullCharactersValidator
from rest_framework.permissions import SAFE_METHODS

from backend.core.serializers import ErrorResponseSerializer

JSON = "application/json"
NO_NUL = "^[^\\x00]*$"  # DRF's CharField refuses a NUL character


class _SignedInWithoutPrivileges:
    """A signed-in person who is neither staff nor holds any permission, as permission classes see one."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def has_perm(self, perm, obj=None) -> bool:
        return False


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus the statuses every operation can answer and null-aware answers."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, description in self._error_statuses(operation).items():
            responses.setdefault(code, {"description": description})
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                self._with_error_body(code, response)
        operation["responses"] = dict(sorted(responses.items()))
        if "requestBody" in operation:
            operation["requestBody"]["content"] = _json_if_the_same(operation["requestBody"]["content"])
        return operation

    def _with_error_body(self, code: str, response: dict) -> None:
        """An error answers with the JSON error body whatever the view renders on success (pictures, CSV)."""
        content = response.get("content", {})
        if JSON not in content:
            content = self._get_response_for_code(ErrorResponseSerializer, code, media_types=[JSON])["content"]
        response["content"] = {JSON: content[JSON]}

    def _error_statuses(self, operation: dict) -> dict[str, str]:
        """The error statuses this operation can answer whatever its view does, with what each means."""
        statuses = {}
        has_body = "requestBody" in operation
        if has_body or any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
            statuses["400"] = "Invalid input: `error.fields` names each bad field or parameter."
        if self.view.get_authenticators():
            statuses["401"] = (
                "Not signed in: no token, or an unknown one (`WWW-Authenticate: Token`)."
                if self._refuses(AnonymousUser())
                else "An unknown or malformed token (the operation itself is open to anonymous callers)."
            )
        if self._refuses(_SignedInWithoutPrivileges()):
            statuses["403"] = "Signed in without the permission this needs (staff, or the registry's promote)."
        elif self.method not in SAFE_METHODS and self._has_session_authentication():
            statuses["403"] = "A session caller without Django's CSRF token (`X-CSRFToken`)."
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            statuses["404"] = "Nothing at this path: no such record, or an id of the wrong form."
        if has_body:
            statuses["413"] = "The body is over the upload cap (UPLOAD_MAX_BYTES; BATCH_UPLOAD_MAX_BYTES for batches)."
            statuses["415"] = "A Content-Type this operation does not read."
        if self._throttles():
            statuses["429"] = "Rate limit reached (API_ANON_RATE, API_USER_RATE, API_READBACK_RATE); see Retry-After."
        return statuses

    def get_auth(self):
        """drf-spectacular marks anonymous access (`{}`) for AllowAny only; any permission that lets an
        anonymous caller through (a POST open to anyone, a GET for the signed-in) says so too."""
        auths = super().get_auth()
        if {} not in auths and not self._refuses(AnonymousUser()):
            auths.append({})
        return auths

    def _get_format_parameters(self):
        """DRF's `?format=` renderer override is not part of the API: clients ask with Accept, or not at all."""
        return []

    def _refuses(self, user) -> bool:
        """Whether the view's permission classes turn `user` away from this operation (before any row is read)."""
        request = _PermissionProbe(self.method, user)
        return not all(permission.has_permission(request, self.view) for permission in self.view.get_permissions())

    def _has_session_authentication(self) -> bool:
        return any(isinstance(authenticator, SessionAuthentication) for authenticator in self.view.get_authenticators())

    def _throttles(self) -> list:
        return self.view.get_throttles()

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        if direction == "request" and isinstance(field, serializers.FileField):
            # A file is a binary part of a multipart body, not a URL: clients (and schemathesis) send a file.
            schema = build_basic_type(OpenApiTypes.BINARY)
            if not field.allow_empty_file:
                schema["minLength"] = 1
            return append_meta(schema, self._get_serializer_field_meta(field, direction))
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        at_least_one = {"array": "minItems", "object": "minProperties"}.get((schema or {}).get("type"))
        if direction == "request" and at_least_one and getattr(field, "allow_empty", True) is False:
            schema.setdefault(at_least_one, 1)  # drf-spectacular drops allow_empty=False; DRF answers [] with a 400
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request":
            for name, field in serializer.fields.items():
                text = schema["properties"].get(name)
                if isinstance(field, serializers.CharField) and text is not None and _refuses_nul(field, text):
                    text["pattern"] = NO_NUL
        return schema

    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "response" and _may_answer_null(field):
            meta["nullable"] = True
        return meta


def _refuses_nul(field, schema: dict) -> bool:
    """A text field DRF refuses a NUL in, whose schema says nothing of it yet (a pattern of its own does)."""
    unsaid = "pattern" not in schema and "oneOf" not in schema and "$ref" not in schema
    return unsaid and any(isinstance(validator, ProhibitNullCharactersValidator) for validator in field.validators)


def _json_if_the_same(content: dict) -> dict:
    """A body that is the same schema as JSON and as a form is documented as JSON, as docs/api.md says bodies
    are: a client generated from the schema cannot tell identical bodies apart (openapi-python-client 0.29
    sends such a body as multipart, labelled as a urlencoded form: its issue #1276). Uploads keep their form."""
    if JSON in content and all(media.get("schema") == content[JSON].get("schema") for media in content.values()):
        return {JSON: content[JSON]}
    return content


class _PermissionProbe:
    """What permission classes read of a request: its method and user."""

    def __init__(self, method: str, user):
        self.method = method
        self.user = user
        self.auth = None


def _may_answer_null(field) -> bool:
    """Whether DRF can render `field` as null: its default is None (a missing related row), or its source
    ends on a nullable model field (Serializer.to_representation writes None for a None attribute)."""
    if not isinstance(field, serializers.Field) or isinstance(field, serializers.SerializerMethodField):
        return False
    if field.default is None:
        return True
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or field.source == "*":
        return False
    model_field = None
    for name in field.source.split("."):
        try:
            model_field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return False  # a property or method: its type hint or allow_null says it
        model = model_field.related_model
        if model is None:
            break
    to_many = model_field is not None and (model_field.one_to_many or model_field.many_to_many)
    return bool(model_field is not None and model_field.null and not to_many)


class SchemaGenerator(generators.SchemaGenerator):
    """drf-spectacular's generator, with the house rules on every view's schema.

    The rules would sit in REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]; mixing them in here keeps them
    under the views' own @extend_schema classes too, and does nothing once that setting names them.
    """

    def create_view(self, callback, method, request=None):
        view = super().create_view(callback, method, request)
        schema_class = view.schema.__class__
        if not issubclass(schema_class, AutoSchema):
            self._set_schema_to_view(view, _with_house_rules(schema_class)())
        return view


@functools.cache
def _with_house_rules(schema_class: type) -> type:
    return type(schema_class.__name__, (AutoSchema, schema_class), {"__module__": __name__})
