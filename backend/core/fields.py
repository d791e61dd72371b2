"""Serializer fields that refuse what the schema says they refuse, where DRF's own let a wrong type by.

In a JSON body text is a string, a number a number and a boolean a boolean: DRF's CharField also takes
0 for "0", its FloatField and IntegerField true and "5", its BooleanField 0, 1 and "yes". A form (multipart) sends
nothing but text, so there the text is read as DRF reads it.
"""

from rest_framework import serializers
from rest_framework.utils import html


def _from_form(field: serializers.Field) -> bool:
    return html.is_html_input(getattr(field.root, "initial_data", None))


class _TextOnly:
    def to_internal_value(self, data):
        if not isinstance(data, str) and not _from_form(self):
            raise serializers.ValidationError("Not a valid string.", code="invalid")
        return super().to_internal_value(data)


class CharField(_TextOnly, serializers.CharField):
    """Text; in a JSON body a string, never a number."""


class SlugField(_TextOnly, serializers.SlugField):
    """A slug; in a JSON body a string, never a number."""


class NumberField(serializers.FloatField):
    """A number; in a JSON body never true, false or a string."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not _from_form(self)):
            self.fail("invalid")
        return super().to_internal_value(data)


class IntegerField(serializers.IntegerField):
    """A whole number; in a JSON body never true, false or a string."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not _from_form(self)):
            self.fail("invalid")
        return super().to_internal_value(data)


class BooleanField(serializers.BooleanField):
    """true or false; in a JSON body nothing else."""

    def to_internal_value(self, data):
        if not isinstance(data, bool) and not _from_form(self):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)
