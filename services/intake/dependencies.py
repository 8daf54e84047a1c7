"""How intake reaches the outside world: its copy of the national catalogue, and the limits on
wrong guesses at citizens' status codes."""
import logging
import time
from datetime import timedelta

import eventlet
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import func, select

from oss_common.config import setting
from oss_common.database import DatabaseSettings, session_factory
from oss_common.ratelimit import Limiter, client_address, rate_setting
from oss_common.events import utc_now
from oss_common.regions import get_region
from services.intake.metrics import CATALOGUE_CACHE_AGE
from services.intake.models import CatalogueEntry
from services.intake.repository import CatalogueCopy

log = logging.getLogger(__name__)


class CatalogueCache(DependencyProvider):
    """The catalogue as this region sees it, served from memory.

    The durable copy lives in intake's own database (so every intake process of the region
    shares it, and a restart while the catalogue is down still finds it); memory is reloaded
    from it at most every CATALOGUE_CACHE_TTL seconds. At start-up, and every
    CATALOGUE_RESYNC_SECONDS, the whole region's list is fetched from the catalogue over RPC;
    between those, the catalogue's events keep the copy current.
    """

    def setup(self):
        config = self.container.config
        self.config = config
        self.region = config["REGION"]
        self.region_record = get_region(self.region)
        settings = DatabaseSettings.from_config(config)
        self.Session = session_factory(config["DATABASE_URL"], settings=settings)
        self.ReadSession = session_factory(config["DATABASE_URL"], read_only=True, settings=settings)
        self.ttl = float(config.get("CATALOGUE_CACHE_TTL") or 2.0)
        self.resync_seconds = float(config.get("CATALOGUE_RESYNC_SECONDS") or 300.0)
        self.rpc_timeout = float(config.get("CATALOGUE_RPC_TIMEOUT") or 10.0)
        self.entries = {}
        # Never loaded, or invalidated: stale whatever the TTL (time.monotonic() may be smaller than it).
        self.loaded_at = float("-inf")
        self._reloading = False
        self.newest_refresh = None
        self._thread = None
        CATALOGUE_CACHE_AGE.labels(self.container.service_name, self.region).set_function(self.age_seconds)

    def start(self):
        self._thread = self.container.spawn_managed_thread(self._resync_forever)

    def stop(self):
        if self._thread is not None:
            self._thread.kill()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    def age_seconds(self):
        if self.newest_refresh is None:
            return float("nan")
        return max(0.0, (utc_now() - self.newest_refresh).total_seconds())

    def get(self, code):
        """The service definition for `code`, or None when the catalogue has no such service."""
        self._refresh_if_stale()
        entry = self.entries.get(code)
        return entry.definition if entry is not None else None

    def has_entries(self):
        self._refresh_if_stale()
        return bool(self.entries)

    def _refresh_if_stale(self):
        """One worker reloads a stale copy; the others meanwhile go on with the copy they have
        (milliseconds older), instead of every busy worker reloading the whole catalogue at once.
        An invalidated copy (a catalogue event) is always reloaded by its reader."""
        if time.monotonic() - self.loaded_at <= self.ttl:
            return
        if self._reloading and self.entries and self.loaded_at > float("-inf"):
            return
        self.reload()

    def reload(self):
        self._reloading = True
        try:
            with self.ReadSession() as session:
                entries = {entry.code: entry for entry in session.scalars(select(CatalogueEntry))}
                newest_refresh = session.scalar(select(func.max(CatalogueEntry.refreshed_at)))
        finally:
            self._reloading = False
        self.entries, self.newest_refresh = entries, newest_refresh
        self.loaded_at = time.monotonic()

    def invalidate(self):
        self.loaded_at = float("-inf")

    def resync(self):
        """Fetch every catalogue service (all states) and store what is newer than our copy."""
        with ClusterRpcProxy(self.config, timeout=self.rpc_timeout) as cluster:
            services = cluster.catalogue.list_services(state="all")
        with self.Session() as session, session.begin():
            copy = CatalogueCopy(session)
            for definition in services:
                copy.keep(definition)
        self.invalidate()
        log.info("catalogue copy of %s refreshed: %d services", self.region, len(services))

    def _resync_forever(self):
        retry_delay = 1.0
        while True:
            try:
                self.resync()
                retry_delay = 1.0
                eventlet.sleep(self.resync_seconds)
            except Exception as exc:  # noqa: BLE001 - the catalogue may be down; the copy keeps serving
                log.warning("catalogue resync for %s failed (%s); retrying in %.0fs",
                            self.region, type(exc).__name__, retry_delay)
                eventlet.sleep(retry_delay)
                retry_delay = min(retry_delay * 2, 60.0)


class StatusGuesses(DependencyProvider):
    """Wrong status codes allowed per client address (STATUS_GUESSES_PER_ADDRESS) and per tracking
    number (STATUS_GUESSES_PER_TRACKING_NUMBER), each `N/S`, in this process. Once either is used
    up, look-ups answer 429 with Retry-After, a right code included: otherwise the limit would only
    slow a walk through the numbers down, not stop it."""

    def setup(self):
        config = self.container.config
        self.by_address = Limiter(rate_setting(config, "STATUS_GUESSES_PER_ADDRESS", "10/600"))
        self.by_tracking_number = Limiter(rate_setting(config, "STATUS_GUESSES_PER_TRACKING_NUMBER", "5/600"))
        self.forwarded_hops = setting(config, "FORWARDED_HOPS", 0, int)

    def get_dependency(self, worker_ctx):
        return self

    def address(self, request):
        return client_address(request, self.forwarded_hops)

    def refusal(self, address, tracking_number):
        """(which limit, seconds to wait) for the first of the two that is used up, or None."""
        for limit, limiter, key in (("status_address", self.by_address, address),
                                    ("status_tracking", self.by_tracking_number, tracking_number)):
            wait = limiter.wait(key)
            if wait:
                return limit, wait
        return None

    def wrong(self, address, tracking_number):
        """Count a wrong guess against both."""
        self.by_address.take(address)
        self.by_tracking_number.take(tracking_number)


class Clock(DependencyProvider):
    """This process's clock for the times intake records (status changes, submissions): UTC, moved
    by CLOCK_OFFSET_SECONDS, which is 0 on a host with a synchronised clock; a test sets it to show
    that nothing downstream depends on two hosts' clocks agreeing."""

    def setup(self):
        self.offset = timedelta(seconds=setting(self.container.config, "CLOCK_OFFSET_SECONDS", 0.0, float))

    def get_dependency(self, worker_ctx):
        return self.now

    def now(self):
        return utc_now() + self.offset


class Payments(DependencyProvider):
    """The region's payment provider settings: Payme's merchant id (PAYME_MERCHANT_ID), the merchant
    key Payme signs its calls with (PAYME_KEY, a secret) and its checkout (PAYME_CHECKOUT_URL)."""

    def setup(self):
        from services.intake.payme import PaymeSettings

        self.payme = PaymeSettings.from_config(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.payme
