"""Reporting's own metrics."""
from prometheus_client import Counter

REPORTING_REGIONS_MISSING = Counter(
    "oss_reporting_regions_missing_total", "National summaries a region's reporting did not answer in time.",
    ["region"],
)
