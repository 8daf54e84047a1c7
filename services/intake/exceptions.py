"""Intake errors callers can act on, with the status each answers."""
from oss_common.errors import Conflict, InvalidInput, NotFound


class ApplicationNotFound(NotFound):
    code = "application_not_found"


def application_not_found(tracking_number):
    return ApplicationNotFound(f"no application {tracking_number!r} in this region", fields={"tracking_number": ["unknown"]})


class ServiceNotAvailable(InvalidInput):
    code = "service_not_available"


class ApplicationInvalid(InvalidInput):
    code = "application_invalid"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


class TransitionRejected(Conflict):
    code = "transition_not_allowed"


class InvoicePaid(Conflict):
    """An invoice is paid once: a second payment is refused, whoever offers it."""

    code = "invoice_already_paid"


class NoInvoice(InvalidInput):
    code = "no_invoice"


class InvoiceExpired(Conflict):
    """An invoice past its due date is not paid: the application was (or is about to be) withdrawn."""

    code = "invoice_expired"


class RefundRefused(Conflict):
    code = "refund_not_allowed"
class ExtensionInvalid(InvalidInput):
    code = "extension_invalid"


class ExtensionNotAllowed(Conflict):
    code = "extension_not_allowed"


class UnknownCentre(InvalidInput):
    code = "unknown_centre"


class ClosureExists(Conflict):
    code = "closure_exists"
