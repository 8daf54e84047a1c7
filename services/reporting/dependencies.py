"""How reporting reaches the outside world: other services over RPC (every region's reports, a region's
intake history for a rebuild), and sessions for answering questions."""
import logging
import time

import eventlet
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, ServiceProxy
from nameko.standalone.rpc import ClusterRpcProxy

from oss_common.callers import caller_context
from oss_common.database import Database, DatabaseSettings, session_factory
from oss_common.regions import deployment_regions
from services.reporting import use_cases
from services.reporting.unit_of_work import ReportingUnitOfWork

log = logging.getLogger(__name__)

DEFAULT_NATIONAL_TIMEOUT_SECONDS = 5.0


class RegionalReports(DependencyProvider):
    """Asks every configured region's `reporting_<slug>` at once and waits at most
    NATIONAL_TIMEOUT_SECONDS; a region that is not running or does not answer in time is
    reported missing instead of holding the answer up.

    Requests expire in the broker after the timeout, so a stopped region does not find a pile
    of stale questions when it comes back.
    """

    rpc_reply_listener = ReplyListener()

    def setup(self):
        config = self.container.config
        self.regions = [region.slug for region in deployment_regions(config.get("REGIONS"))]
        self.timeout = float(config.get("NATIONAL_TIMEOUT_SECONDS") or DEFAULT_NATIONAL_TIMEOUT_SECONDS)

    def get_dependency(self, worker_ctx):
        def ask(method, *args):
            """({slug: answer}, [missing slugs]) for `reporting_<slug>.<method>(*args)` across regions."""
            deadline = time.monotonic() + self.timeout
            replies, missing = {}, []
            for slug in self.regions:
                proxy = ServiceProxy(worker_ctx, f"reporting_{slug}", self.rpc_reply_listener, expiration=self.timeout)
                try:
                    replies[slug] = getattr(proxy, method).call_async(*args)
                except UnknownService:
                    missing.append(slug)
            answers = {}
            for slug, reply in replies.items():
                try:
                    with eventlet.Timeout(max(deadline - time.monotonic(), 0.001)):
                        answers[slug] = reply.result()
                except eventlet.Timeout:
                    missing.append(slug)
                except Exception as exc:  # noqa: BLE001 - a region's failure must not fail the national answer
                    log.warning("reporting_%s answered %s with %s", slug, method, type(exc).__name__)
                    missing.append(slug)
            return answers, missing

        ask.slugs = list(self.regions)
        return ask


class ReadOnlyDatabase(Database):
    """Sessions for answering questions: on SQLite they read a consistent snapshot without
    taking the write lock, so reports never queue behind the event consumer."""

    def setup(self):
        super().setup()
        self.Session = session_factory(self.url, read_only=True, settings=self.settings)


def rebuild_from_intake(config: dict, token: str, page_size: int = 1000) -> dict:
    """`oss reporting rebuild --region <slug>`: replay the region's intake history into the
    DATABASE_URL of `config` (the regional reporting service's own settings), asking intake as the
    region administrator whose `token` is given."""
    with ClusterRpcProxy(config, timeout=float(config.get("INTAKE_RPC_TIMEOUT") or 60),
                         context_data=caller_context(token)) as cluster:
        intake = getattr(cluster, f"intake_{config['REGION']}")
        Session = session_factory(config["DATABASE_URL"], settings=DatabaseSettings.from_config(config))
        with Session() as session:
            return use_cases.rebuild(ReportingUnitOfWork(session), intake.export_events, page_size)
