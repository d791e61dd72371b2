"""backend.core.fields: JSON bodies keep to JSON types; forms are read as DRF reads them."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from rest_framework import serializers

from backend.core.fields import BooleanField, CharField, IntegerField, NumberField, SlugField


class Sample(serializers.Serializer):
    text = CharField(required=False)
    slug = SlugField(required=False)
    number = NumberField(required=False)
    whole = IntegerField(required=False)
    flag = BooleanField(required=False)


@pytest.mark.parametrize(
    "body", [{"text": 0}, {"slug": 5}, {"number": True}, {"number": "0.5"}, {"whole": "5"}, {"whole": False},
             {"flag": 1}, {"flag": "true"}],
)  # fmt: skip
def test_a_json_body_of_the_wrong_type_is_refused(body):
    serializer = Sample(data=body)
    assert not serializer.is_valid() and list(serializer.errors) == list(body)


def test_a_json_body_of_the_right_types_is_taken():
    body = {"text": "a", "slug": "a-b", "number": 0.5, "whole": 5, "flag": False}
    serializer = Sample(data=body)
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == body


def test_a_form_sends_text_and_is_read_as_drf_reads_it():
    serializer = Sample(data=QueryDict("text=0&slug=a&number=0.5&whole=5&flag=true"))
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {"text": "0", "slug": "a", "number": 0.5, "whole": 5, "flag": True}
