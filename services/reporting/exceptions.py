"""Reporting errors callers can act on, with the status each answers."""
from oss_common.errors import ApiError


class CredentialsRequired(ApiError):
    status = 401
    code = "credentials_required"
