"""How notifications reaches the outside world: its channels, its templates, the delivery policy
from its settings, and the metrics of its deliveries."""
import logging
from datetime import timedelta

import eventlet
from nameko.extensions import DependencyProvider

from oss_common.config import ConfigurationError, setting
from oss_common.consumers import DEFAULT_QUEUE_DEPTH_SECONDS
from oss_common.database import DatabaseSettings, session_factory
from oss_common.failures import DEFAULT_RETRY_BASE_SECONDS, DEFAULT_RETRY_CEILING_SECONDS
from oss_common.schemas import LANGUAGES
from services.notifications import views
from services.notifications.channels import ChannelSet, SmsGateway, SmtpChannel
from services.notifications.domain import CHANNELS, NONE, DeliveryPolicy, parse_agency_addresses
from services.notifications.messages import TemplateBook
from services.notifications.metrics import NOTIFICATION_DELIVERIES, NOTIFICATION_PENDING, NOTIFICATION_RETRIES

log = logging.getLogger(__name__)

def region_of(config):
    return config.get("REGION") or "national"


class Channels(DependencyProvider):
    """E-mail over SMTP and SMS through the HTTP gateway, as configured."""

    def setup(self):
        config = self.container.config
        timeout = setting(config, "SEND_TIMEOUT_SECONDS", 10.0, float)
        try:
            email = SmtpChannel(
                host=setting(config, "SMTP_HOST", ""), port=setting(config, "SMTP_PORT", 25, int),
                security=setting(config, "SMTP_SECURITY", "none"), user=setting(config, "SMTP_USER", ""),
                password=setting(config, "SMTP_PASSWORD", ""), sender=setting(config, "SMTP_FROM", ""), timeout=timeout,
            )
            sms = SmsGateway(
                url=setting(config, "SMS_GATEWAY_URL", ""), token=setting(config, "SMS_GATEWAY_TOKEN", ""),
                auth=setting(config, "SMS_AUTH", "bearer"), payload=setting(config, "SMS_PAYLOAD", "eskiz"),
                sender=str(setting(config, "SMS_SENDER", "")), timeout=timeout,
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.channels = ChannelSet(email=email, sms=sms)
        missing = self.channels.unconfigured()
        if missing:
            log.warning("%s: no %s configured; citizens' messages by it are held (retried) until one is",
                        self.container.service_name, " or ".join(missing))

    def get_dependency(self, worker_ctx):
        return self.channels


class Templates(DependencyProvider):
    """The message templates, TEMPLATES_DIR first."""

    def setup(self):
        self.book = TemplateBook(setting(self.container.config, "TEMPLATES_DIR", None))

    def get_dependency(self, worker_ctx):
        return self.book


class Policy(DependencyProvider):
    """How many attempts, how long between them, which address each agency has."""

    def setup(self):
        config = self.container.config
        send_timeout = setting(config, "SEND_TIMEOUT_SECONDS", 10.0, float)
        record_outcome_for = setting(config, "OUTCOME_RECORD_SECONDS", 600.0, float)
        language = setting(config, "AGENCY_LANGUAGE", "uz")
        if language not in LANGUAGES:
            raise ConfigurationError(f"AGENCY_LANGUAGE must be one of {', '.join(LANGUAGES)}")
        try:
            addresses = parse_agency_addresses(setting(config, "AGENCY_EMAILS", ""))
        except ValueError as exc:
            raise ConfigurationError(f"AGENCY_EMAILS: {exc}") from None
        self.policy = DeliveryPolicy(
            region=region_of(config),
            producer=self.container.service_name,
            # The same schedule the event consumer follows between retries of an event.
            retry_base_seconds=setting(config, "RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS, float),
            retry_ceiling_seconds=setting(config, "RETRY_CEILING_SECONDS", DEFAULT_RETRY_CEILING_SECONDS, float),
            # An attempt is a handful of socket operations, each bounded by the timeout, and then the
            # recording of its outcome, which waits out a database that is away for up to
            # OUTCOME_RECORD_SECONDS; one claimed longer ago than all of it could take was cut off mid-send.
            abandon_after=timedelta(seconds=6 * send_timeout + record_outcome_for),
            record_outcome_for=timedelta(seconds=record_outcome_for),
            agency_addresses=addresses,
            agency_default_address=setting(config, "AGENCY_EMAIL_DEFAULT", None),
            agency_language=language,
        )

    def get_dependency(self, worker_ctx):
        return self.policy


class DeliveryMetrics(DependencyProvider):
    """Counts settled deliveries and retries; keeps the pending-deliveries gauge current (every
    QUEUE_DEPTH_SECONDS). Labels never carry an address or a tracking number."""

    def setup(self):
        config = self.container.config
        self.service = self.container.service_name
        self.region = region_of(config)
        self.interval = setting(config, "QUEUE_DEPTH_SECONDS", DEFAULT_QUEUE_DEPTH_SECONDS, float)
        self.Session = session_factory(config["DATABASE_URL"], read_only=True, settings=DatabaseSettings.from_config(config))
        self._thread = None
        for channel in CHANNELS:
            if channel != NONE:
                NOTIFICATION_PENDING.labels(self.service, self.region, channel).set(0)

    def start(self):
        self._thread = self.container.spawn_managed_thread(self._count_pending)

    def stop(self):
        if self._thread is not None:
            self._thread.kill()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    def finished(self, delivery):
        NOTIFICATION_DELIVERIES.labels(delivery.region, delivery.channel, delivery.status).inc()

    def retried(self, delivery):
        NOTIFICATION_RETRIES.labels(self.service, self.region, delivery.channel).inc()

    def _count_pending(self):
        while True:
            try:
                with self.Session() as session:
                    counts = views.pending_by_channel(session)
                for channel in CHANNELS:
                    if channel != NONE:
                        NOTIFICATION_PENDING.labels(self.service, self.region, channel).set(counts.get(channel, 0))
            except Exception as exc:  # noqa: BLE001 - the database may be away; the gauge keeps its last value
                log.debug("pending deliveries of %s unavailable: %s", self.service, type(exc).__name__)
            eventlet.sleep(self.interval)
