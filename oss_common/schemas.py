"""marshmallow building blocks more than one service's wire format uses."""
import re
from datetime import date, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from oss_common.events import rfc3339
from oss_common.regions import load_registry

LANGUAGES = ("uz", "ru", "en")
CODE = validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error="must be lower-case letters, digits and '-'")
# Characters no text may hold: C0 controls other than tab, line feed and carriage return, and DEL.
# NUL in particular: PostgreSQL cannot store it, SQLite cuts the text there.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_MESSAGE = "must not contain control characters"


class StrictSchema(Schema):
    """Unknown fields are refused, so a typo is an error rather than silently ignored; text holding
    control characters is refused too, naming the field."""

    class Meta:
        unknown = RAISE

    @pre_load
    def refuse_control_characters(self, data, **kwargs):
        problems = control_characters(data) if isinstance(data, dict) else None
        if problems:
            raise ValidationError(problems)
        return data


def control_characters(value: object) -> list | dict | None:
    """Where `value` (a decoded JSON document) holds control characters, as marshmallow error
    messages (`{"applicant": {"full_name": [...]}}`), or None."""
    if isinstance(value, str):
        return [CONTROL_MESSAGE] if CONTROL.search(value) else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    problems = {}
    for key, item in items:
        if isinstance(key, str) and CONTROL.search(key):
            # named for the object holding it: the key itself is not fit to echo
            problems.setdefault("_schema", []).append("names " + CONTROL_MESSAGE)
            continue
        found = control_characters(item)
        if found:
            problems[key] = found
    return problems or None


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


class Timestamp(fields.AwareDateTime):
    """A moment as every answer shows it: RFC 3339 in UTC with a Z suffix, to the microsecond."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs) -> str | None:
        return None if value is None else rfc3339(value)


class Day(fields.Date):
    """A calendar date between 1970 and 2999: anything outside is a typo or a probe, and dates at
    the ends of Python's range overflow when a day is added to them."""

    EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)

    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        if not self.EARLIEST <= day <= self.LATEST:
            raise ValidationError(f"must be between {self.EARLIEST.isoformat()} and {self.LATEST.isoformat()}")
        return day
