"""Catalogue errors callers can act on."""
from oss_common.errors import InvalidInput, NotFound


class ServiceNotFound(NotFound):
    code = "service_not_found"


class UnknownReference(InvalidInput):
    code = "unknown_reference"
