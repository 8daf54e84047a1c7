"""Intake's business metrics; labels are region and service code only, never anything a citizen typed."""
from prometheus_client import Counter, Gauge

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
