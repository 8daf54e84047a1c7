"""The one error format: `{"error": CODE, "message": ..., "fields": {...}}` with a 4xx status."""
import math

from marshmallow import ValidationError


class ApiError(Exception):
    """An error the caller can fix; its status is 4xx (503 only for a dependency that is down)."""

    status = 400
    code = "bad_request"

    def __init__(self, message, fields=None, code=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.message, "fields": self.fields}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class InvalidInput(ApiError):
    status = 422
    code = "invalid"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(ApiError):
    """Answered with a Retry-After header of `retry_after` whole seconds."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message, retry_after, fields=None):
        super().__init__(message, fields=fields)
        self.retry_after = max(1, math.ceil(retry_after))


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


def flatten_messages(messages: dict | list | str, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as `{"applicant.pinfl": ["..."]}`."""
    flat = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "_schema"
            if isinstance(value, dict):
                flat.update(flatten_messages(value, name))
            else:
                flat.setdefault(name, []).extend(value if isinstance(value, list) else [value])
    else:
        flat[prefix or "_schema"] = messages if isinstance(messages, list) else [messages]
    return flat


def from_validation_error(error: ValidationError, status_class: type = BadRequest) -> "ApiError":
    fields = flatten_messages(error.messages)
    names = ", ".join(sorted(fields))
    return status_class(f"invalid input: {names}", fields=fields, code="validation_failed")
