"""The API's pagination: limit and offset, with a ceiling on the limit (a huge one is not a 500).

A limit or offset that is not a whole number in range is a 400 naming the parameter, as the schema
says, rather than being ignored for the default: a client that sends `limit=abc` learns of its bug.
"""

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request) -> int:
        limit = _whole_number(request, self.limit_query_param, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        return _whole_number(request, self.offset_query_param, minimum=0) or 0

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"]["minimum"] = 1
        limit["description"] = (
            f"Rows per page (default {self.default_limit}); above {self.max_limit}, {self.max_limit}."
        )
        offset["schema"]["minimum"] = 0
        return [limit, offset]


def _whole_number(request, name: str, *, minimum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise serializers.ValidationError({name: [f"A whole number, {minimum} or more."]})
    return int(raw)
