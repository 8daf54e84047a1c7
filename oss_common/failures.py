"""Which failures pass and which do not: one classification for every consumer and queued request.

Transient: what is away will come back - the database or broker unreachable or busy (connection
refused or dropped, a lock or deadlock timeout), another service not answering over RPC, a gateway
timing out or answering 5xx, an SMTP 4xx. Work that meets one is tried again with capped back-off
for as long as it takes. Anything else is not known to pass: a handler gives it a few tries (a bug
fixed by a restart, a race) and then treats it as poison, which is parked with its reason for an
operator (`oss dead-letters`), never retried for ever.
"""
import socket

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.exceptions import RpcTimeout, UnknownService
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DEFAULT_RETRY_BASE_SECONDS = 0.5
DEFAULT_RETRY_CEILING_SECONDS = 60.0


class RetryLater(Exception):
    """Raised by a handler whose work must wait for something outside it (a gateway down, a channel
    not configured yet): the message is tried again after a back-off, never dead-lettered for it."""


TRANSIENT = (
    RetryLater,
    OperationalError,  # connection refused or lost, SQLite busy, PostgreSQL deadlock or shutdown
    InterfaceError,
    DisconnectionError,
    PoolTimeout,
    AmqpConnectionError,
    KombuOperationalError,
    RpcTimeout,
    UnknownService,  # nobody consumes the service's RPC queue: it is not running
    ConnectionError,
    socket.timeout,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is a failure that passes on its own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TRANSIENT):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False


def retry_delay(attempt: int, base: float = DEFAULT_RETRY_BASE_SECONDS,
                ceiling: float = DEFAULT_RETRY_CEILING_SECONDS) -> float:
    """Seconds before the next try after the `attempt`-th failure: base, 2 base, 4 base, ... at most `ceiling`."""
    return min(base * (2 ** (max(attempt, 1) - 1)), ceiling)
