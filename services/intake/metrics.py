"""Intake's business metrics; labels are region and service code only, never anything a citizen typed."""
from prometheus_client import Counter, Gauge

from oss_common.calendar import local_date
from services.intake.domain import DECISIONS

APPLICATIONS_SUBMITTED = Counter(
    "oss_applications_submitted_total", "Applications submitted.", ["region", "service_code"],
)
APPLICATIONS_DECIDED = Counter(
    "oss_applications_decided_total", "Applications decided (approved or rejected).",
    ["region", "service_code", "decision"],
)
SLA_BREACHES = Counter(
    "oss_sla_breaches_total", "Applications decided after their legal due date.", ["region", "service_code"],
)
CATALOGUE_CACHE_AGE = Gauge(
    "oss_catalogue_cache_age_seconds", "Seconds since intake's catalogue copy was last refreshed from the catalogue.",
    ["service", "region"],
)
FEES = Counter(
    "oss_fees_tiyin_total", "Money of applications' fees and office sales in tiyin: invoiced, paid (desk or Payme), "
    "refunded, sold (office services at the desk).", ["region", "service_code", "movement"],
)
STATUS_LOOKUPS = Counter(
    "oss_status_lookups_total", "Anonymous status look-ups, by outcome: found, not_found (an unknown tracking "
    "number or a wrong code, never told apart) or refused (too many wrong codes, 429).",
    ["region", "outcome"],
)


def count_submission(region: str, application) -> None:
    APPLICATIONS_SUBMITTED.labels(region, application.service_code).inc()


def count_decision(region: str, application) -> None:
    """A decision (approved, rejected) counts, and a breach of the SLA when it came after the due date."""
    if application.status not in DECISIONS:
        return
    APPLICATIONS_DECIDED.labels(region, application.service_code, application.status).inc()
    if local_date(application.decided_at) > application.due_date:
        SLA_BREACHES.labels(region, application.service_code).inc()


def count_fee(region: str, service_code: str, movement: str, amount_tiyin: int) -> None:
    """Money moved: `invoiced`, `paid`, `refunded` or `sold`."""
    FEES.labels(region, service_code, movement).inc(amount_tiyin)
