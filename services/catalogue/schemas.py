"""What crosses the wire for the catalogue: service definitions in and out."""
from marshmallow import ValidationError, fields, post_load, pre_load, validate, validates_schema

from oss_common.regions import load_registry
from oss_common.schemas import CODE, Language, LocalizedText, RegionSlug, StrictSchema, Timestamp

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
STATES = ("draft", "published", "retired")
COLLECTIONS = ("invoice", "desk")


class DocumentSchema(StrictSchema):
    code = fields.String(required=True, validate=CODE)
    names = fields.Nested(LocalizedText, required=True)


class AttributeValueSchema(StrictSchema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.Nested(LocalizedText, required=True)


class AttributeSchema(StrictSchema):
    """One form field, as an Open311 service definition describes it."""

    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,62}$"))
    variable = fields.Boolean(load_default=True)
    datatype = fields.String(required=True, validate=validate.OneOf(DATATYPES))
    required = fields.Boolean(load_default=False)
    datatype_description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    order = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    description = fields.Nested(LocalizedText, required=True)
    values = fields.List(fields.Nested(AttributeValueSchema), load_default=list)

    @validates_schema
    def check_values(self, data, **kwargs):
        has_values = bool(data.get("values"))
        if data.get("datatype") in LIST_DATATYPES and not has_values:
            raise ValidationError("a list datatype needs values", "values")
        if data.get("datatype") not in LIST_DATATYPES and has_values:
            raise ValidationError("only list datatypes have values", "values")
        keys = [value["key"] for value in data.get("values", [])]
        if len(keys) != len(set(keys)):
            raise ValidationError("value keys must be unique", "values")


class FeeSchema(StrictSchema):
    """Free, or a multiple of the base calculation amount (BHM) in force on the day, or a fixed amount in tiyin.

    `collection` says how it is paid: `invoice` (the default: an invoice at filing, the application
    waits for payment) or `desk` (the centre's own office services, sold at the desk on the spot).
    """

    free = fields.Boolean(required=True)
    bca_multiple = fields.Decimal(load_default=None, allow_none=True, places=4, as_string=False,
                                  validate=validate.Range(min=0, min_inclusive=False, max=100000))
    fixed_tiyin = fields.Integer(load_default=None, allow_none=True, strict=True,
                                 validate=validate.Range(min=1, max=10**13))
    collection = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(COLLECTIONS))

    @validates_schema
    def check_amount(self, data, **kwargs):
        amounts = [name for name in ("bca_multiple", "fixed_tiyin") if data.get(name) is not None]
        if not data.get("free") and not amounts:
            raise ValidationError("a paid service needs bca_multiple or fixed_tiyin", "bca_multiple")
        if len(amounts) > 1:
            raise ValidationError("bca_multiple or fixed_tiyin, not both", "fixed_tiyin")
        if data.get("free") and amounts:
            raise ValidationError(f"a free service has no {amounts[0]}", amounts[0])
        if data.get("free") and data.get("collection"):
            raise ValidationError("a free service has no collection", "collection")

    @post_load
    def as_number(self, data, **kwargs):
        if data.get("bca_multiple") is not None:
            data["bca_multiple"] = float(data["bca_multiple"])
        for name in ("bca_multiple", "fixed_tiyin", "collection"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


class BaseAmountSchema(StrictSchema):
    """One value of the base calculation amount and the day it took effect."""

    effective_from = fields.Date(required=True)
    amount_tiyin = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**13))


class BaseAmountListSchema(StrictSchema):
    items = fields.List(fields.Nested(BaseAmountSchema), required=True)


class FeeAmountSchema(StrictSchema):
    # An ISO day as domain.fee_schedule gives it (and intake's copy keeps it).
    effective_from = fields.String(required=True, metadata={"format": "date"})
    amount_tiyin = fields.Integer(required=True)
class ClockSchema(StrictSchema):
    """The service's legal clock: what stops it and how far an officer may extend it."""

    stops_on_return = fields.Boolean(load_default=True, metadata={
        "description": "returning an application for correction stops its clock; resubmission resumes it with the "
                       "working days that were left"})
    extension_working_days = fields.Integer(load_default=0, validate=validate.Range(min=0, max=365), metadata={
        "description": "the most working days one extension may add (0: the deadline cannot be extended)"})
    max_extensions = fields.Integer(load_default=1, validate=validate.Range(min=0, max=10), metadata={
        "description": "how many extensions an application may have"})


CLOCK_DEFAULTS = {"stops_on_return": True, "extension_working_days": 0, "max_extensions": 1}


class ServiceDefinitionSchema(StrictSchema):
    """A public service as an administrator writes it (state and version are the catalogue's)."""

    code = fields.String(required=True, validate=CODE)
    names = fields.Nested(LocalizedText, required=True)
    descriptions = fields.Nested(LocalizedText, required=True)
    agency = fields.String(required=True, validate=CODE)
    group = fields.String(required=True, validate=CODE)
    keywords = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                           validate=validate.Length(max=20))
    required_documents = fields.List(fields.Nested(DocumentSchema), load_default=list, validate=validate.Length(max=50))
    attributes = fields.List(fields.Nested(AttributeSchema), load_default=list, validate=validate.Length(max=100))
    fee = fields.Nested(FeeSchema, required=True)
    deadline_working_days = fields.Integer(required=True, validate=validate.Range(min=1, max=365))
    clock = fields.Nested(ClockSchema, load_default=lambda: dict(CLOCK_DEFAULTS))
    regions = fields.List(RegionSlug(), required=True, validate=validate.Length(min=1))
    public_interest = fields.Boolean(load_default=False, metadata={
        "description": "a matter of public interest (a broken street light, a complaint to the khokimiyat): its "
                       "applications are listed on the anonymous Open311 face; every other service's never are"})

    @pre_load
    def expand_all_regions(self, data, **kwargs):
        if isinstance(data, dict) and data.get("regions") == "all":
            data = dict(data, regions=sorted(load_registry()))
        return data

    @validates_schema
    def check_uniqueness(self, data, **kwargs):
        for key, name in (("required_documents", "code"), ("attributes", "code"), ("attributes", "order")):
            values = [item[name] for item in data.get(key, [])]
            if len(values) != len(set(values)):
                raise ValidationError(f"{name}s must be unique", key)

    @post_load
    def normalise(self, data, **kwargs):
        data["regions"] = sorted(set(data["regions"]))
        data["attributes"] = sorted(data["attributes"], key=lambda attribute: attribute["order"])
        return data


class SeedServiceSchema(ServiceDefinitionSchema):
    state = fields.String(load_default="published", validate=validate.OneOf(STATES))


class NamedCodeSchema(StrictSchema):
    code = fields.String(required=True, validate=CODE)
    names = fields.Nested(LocalizedText, required=True)


class CatalogueDocumentSchema(StrictSchema):
    """A catalogue file: groups, agencies and services (the seed, or an oblast's additions)."""

    groups = fields.List(fields.Nested(NamedCodeSchema), load_default=list)
    agencies = fields.List(fields.Nested(NamedCodeSchema), load_default=list)
    services = fields.List(fields.Nested(SeedServiceSchema), load_default=list)
    base_amounts = fields.List(fields.Nested(BaseAmountSchema), load_default=list)


class ServiceQuerySchema(StrictSchema):
    region = RegionSlug(load_default=None)
    group = fields.String(load_default=None, validate=CODE)
    state = fields.String(load_default="published", validate=validate.OneOf(STATES + ("all",)))
    public_interest = fields.Boolean(load_default=None, metadata={"description": "only public-interest services (true) "
                                                                                 "or only the others (false)"})
    lang = Language(load_default=None)


class LanguageQuerySchema(StrictSchema):
    lang = Language(load_default=None)


# What the HTTP API answers: views.py dumps these (a service's view is its events' body, events.py), and the OpenAPI
# document is built from them.

class AgencyViewSchema(StrictSchema):
    code = fields.String(required=True)
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class FeeViewSchema(StrictSchema):
    """A fee as the API and the events show it (FeeSchema reads it; its amounts are numbers here)."""

    free = fields.Boolean(required=True)
    bca_multiple = fields.Float()
    fixed_tiyin = fields.Integer()
    collection = fields.String(validate=validate.OneOf(COLLECTIONS))


class ServiceViewSchema(StrictSchema):
    """A public service as the API and the catalogue's events show it."""

    code = fields.String(required=True)
    names = fields.Nested(LocalizedText, required=True)
    descriptions = fields.Nested(LocalizedText, required=True)
    agency = fields.Nested(AgencyViewSchema, required=True)
    group = fields.String(required=True)
    keywords = fields.List(fields.String(), required=True)
    required_documents = fields.List(fields.Nested(DocumentSchema), required=True)
    attributes = fields.List(fields.Nested(AttributeSchema), required=True)
    fee = fields.Nested(FeeViewSchema, required=True)
    fee_amounts = fields.List(fields.Nested(FeeAmountSchema), required=True, metadata={
        "description": "a paid service's fee in tiyin from each day the base calculation amount changed, oldest first"})
    deadline_working_days = fields.Integer(required=True)
    clock = fields.Nested(ClockSchema, required=True)
    regions = fields.List(fields.String(), required=True)
    public_interest = fields.Boolean(required=True, metadata={
        "description": "its applications are listed on the anonymous Open311 face"})
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    version = fields.Integer(required=True)
    updated_at = Timestamp(required=True)
    name = fields.String(metadata={"description": "in the language asked for with `lang`"})
    description = fields.String(metadata={"description": "in the language asked for with `lang`"})


class ServiceListSchema(StrictSchema):
    items = fields.List(fields.Nested(ServiceViewSchema), required=True)
    total = fields.Integer(required=True)


class NamedViewSchema(StrictSchema):
    code = fields.String(required=True)
    names = fields.Nested(LocalizedText, required=True)
    name = fields.String(metadata={"description": "in the language asked for with `lang`"})


class NamedListSchema(StrictSchema):
    items = fields.List(fields.Nested(NamedViewSchema), required=True)


class ChangeViewSchema(StrictSchema):
    version = fields.Integer(required=True)
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    actor = fields.String(required=True, metadata={"description": "`role:subject` of the token that made the change"})
    at = Timestamp(required=True, attribute="occurred_at")


class ChangeListSchema(StrictSchema):
    code = fields.String(required=True)
    items = fields.List(fields.Nested(ChangeViewSchema), required=True)
