"""A nameko timer whose interval is a setting of the service (every service with periodic work uses it)."""
from nameko.timer import Timer

from oss_common.config import setting


class ConfiguredTimer(Timer):
    """nameko's timer, firing every `<config_key>` seconds (`default` when unset)."""

    def __init__(self, config_key, default, **kwargs):
        self.config_key = config_key
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = setting(self.container.config, self.config_key, self.interval, float)
        super().setup()


configured_timer = ConfiguredTimer.decorator
