"""marshmallow building blocks more than one service's wire format uses."""
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from oss_common.regions import load_registry

LANGUAGES = ("uz", "ru", "en")
CODE = validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error="must be lower-case letters, digits and '-'")


class StrictSchema(Schema):
    """Unknown fields are refused, so a typo is an error rather than silently ignored."""

    class Meta:
        unknown = RAISE


class LocalizedText(StrictSchema):
    """Text in Uzbek (Latin), Russian and English."""

    uz = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    ru = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    en = fields.String(required=True, validate=validate.Length(min=1, max=2000))


def localized(text: dict, language: str) -> str:
    """`text` in `language`, falling back to Uzbek."""
    return text.get(language) or text.get("uz") or ""


class RegionSlug(fields.String):
    """A region slug from the registry."""

    def _deserialize(self, value, attr, data, **kwargs):
        slug = super()._deserialize(value, attr, data, **kwargs)
        if slug not in load_registry():
            raise ValidationError("unknown region")
        return slug


class Language(fields.String):
    def __init__(self, **kwargs):
        super().__init__(validate=validate.OneOf(LANGUAGES), **kwargs)
