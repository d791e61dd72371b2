"""The API's pagination: limit and offset, with a ceiling on the limit (a huge one is not a 500)."""

from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
