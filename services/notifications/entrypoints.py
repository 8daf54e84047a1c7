"""Entrypoints configured from the service's settings (the timer lives in oss_common.timers)."""
from oss_common.timers import ConfiguredTimer, configured_timer

__all__ = ["ConfiguredTimer", "configured_timer"]
