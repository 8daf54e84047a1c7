"""Engines, the per-worker SQLAlchemy session dependency and Alembic migrations for every service.

Longer than most modules because one pool per process is made here with everything that shapes it:
its settings, SQLite's writer queue, the idle ping, and the prepared-statement runner that uses it."""
import hashlib
import logging
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from eventlet import sleep as _sleep
from eventlet.semaphore import Semaphore

from alembic import command
from alembic.config import Config as AlembicConfig
from nameko.extensions import DependencyProvider
from nameko.containers import WorkerContext
from datetime import timezone

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from oss_common.config import as_flag, setting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseSettings:
    """How a process uses its database; from the service's config (`from_config`), so the names of
    README's configuration reference work in config.yml, a deployment file and the environment alike."""

    # Server connections a process's PostgreSQL pool keeps open: by default one per concurrent worker
    # (max_workers). A pool smaller than the workers that use it at once opens an overflow connection
    # for a busy worker and closes it again when the worker is done: a new server process (fork,
    # authentication) per unit of work (with a pool of 5 for 10 workers, ~2% of a busy intake's
    # samples and as much again in PostgreSQL). Every use in the process (sessions, autocommit
    # statements, the outbox relay) shares this one pool.
    pool_size: int = 10
    # A pooled server connection is pinged (SELECT 1) at checkout only after lying idle this long.
    # One used moments ago is almost always alive, and should it have died anyway, the failing
    # statement invalidates it and every connection of the pool opened before it (SQLAlchemy's
    # disconnect handling), so the next checkout connects afresh.
    ping_after_idle_seconds: float = 10.0
    # Whether hot statements (PreparedStatement.first) are prepared on the server, once per
    # connection, and then only EXECUTEd: PostgreSQL then neither parses nor plans them again.
    # Turn off behind a pooler that hands one client's statements to several server connections
    # (PgBouncer in transaction mode).
    server_side_prepare: bool = True
    # How long a SQLite write waits for another process of the region to finish writing.
    sqlite_lock_wait_seconds: float = 30.0

    @classmethod
    def from_config(cls, config: dict) -> "DatabaseSettings":
        return cls(
            pool_size=setting(config, "DB_POOL_SIZE", setting(config, "max_workers", cls.pool_size, int), int),
            ping_after_idle_seconds=setting(config, "DB_PING_AFTER_IDLE_SECONDS", cls.ping_after_idle_seconds, float),
            server_side_prepare=setting(config, "DB_SERVER_SIDE_PREPARE", cls.server_side_prepare, as_flag),
            sqlite_lock_wait_seconds=setting(config, "SQLITE_LOCK_WAIT_SECONDS", cls.sqlite_lock_wait_seconds, float),
        )


DEFAULT_SETTINGS = DatabaseSettings()
IDLE_SINCE = "oss_idle_since"
READ_ONLY = "oss_read_only"
WRITER = "oss_sqlite_writer"  # in a connection's info while it holds this process's writer slot
PREPARED_NAMES = "oss_prepared"  # in a connection's info: the statements prepared on its server connection
UNKNOWN_PREPARED_STATEMENT = "26000"  # PostgreSQL's invalid_sql_statement_name

_engines = {}  # (database URL, DatabaseSettings) -> Engine
_settings = weakref.WeakKeyDictionary()  # an engine's pool (shared by its execution_options copies) -> DatabaseSettings
_engines_lock = threading.Lock()


def settings_of(engine: Engine) -> DatabaseSettings:
    """The settings `engine` was made with (get_engine)."""
    return _settings.get(engine.pool, DEFAULT_SETTINGS)


class UtcDateTime(TypeDecorator):
    """An instant, stored in UTC and read back aware.

    SQLite keeps a datetime as text without its offset, so a bound value in another zone
    (a Tashkent day's midnight, say) would be compared by its wall-clock digits; and what it
    reads back is naive. Converting every bound value to UTC and marking every result UTC makes
    SQLite answer as PostgreSQL's timestamptz does.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give instants with their time zone")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _make_green_psycopg():
    """psycopg2 blocks the whole process under eventlet unless made cooperative."""
    try:
        import eventlet.patcher
    except ImportError:  # pragma: no cover - eventlet is a hard dependency
        return
    if eventlet.patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()


def _prepare_sqlite(engine, url, lock_wait_seconds):
    database = url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # No waiting inside SQLite: its busy handler sleeps in C and would freeze every green
        # thread of the process, including the one holding the lock (see on_begin).
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    # One writer at a time per process, handed over in order: green threads of this process queue
    # here instead of each polling BEGIN IMMEDIATE, so only one per process polls (against other
    # processes of the region) and can afford short back-off.
    writers = Semaphore(1)

    def release_writer(connection_info):
        if connection_info.pop(WRITER, False):
            writers.release()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        if connection.get_execution_options().get(READ_ONLY):
            # A reader sees a consistent WAL snapshot without any lock.
            connection.exec_driver_sql("BEGIN")
            return
        # IMMEDIATE takes the write lock up front, so two processes of one region never deadlock
        # upgrading a read lock. While another process holds it, wait cooperatively (eventlet.sleep),
        # so the rest of this process keeps serving.
        deadline = time.monotonic() + lock_wait_seconds
        if not writers.acquire(timeout=lock_wait_seconds):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        connection.info[WRITER] = True
        delay = 0.001
        try:
            while True:
                try:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                        raise
                _sleep(delay)
                delay = min(delay * 2, 0.005)
        except BaseException:
            release_writer(connection.info)
            raise

    # The slot is released as the transaction ends (before SQLite's COMMIT, which does not yield),
    # and, should a connection go back to the pool still holding it, at check-in.
    @event.listens_for(engine, "commit")
    def on_commit(connection):
        release_writer(connection.info)

    @event.listens_for(engine, "rollback")
    def on_rollback(connection):
        release_writer(connection.info)

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection, record):
        release_writer(record.info)


def _ping_when_idle(engine, after_idle_seconds):
    """Pre-ping only connections that lay idle in the pool for `after_idle_seconds` or more.

    `pool_pre_ping` pinged on every checkout: one more round trip per unit of work (~5% of a busy
    intake's samples on PostgreSQL). A connection that fails the ping is replaced, as with
    pool_pre_ping; a connection that dies between uses is invalidated by its failing statement.
    """

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection, record):
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, record, _proxy):
        idle_since = record.info.pop(IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < after_idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: let the pool connect afresh
            raise DisconnectionError(f"idle connection failed its ping: {type(exc).__name__}") from exc


def _server_engine(url, settings, **options):
    if url.get_backend_name() == "postgresql":
        _make_green_psycopg()
    engine = create_engine(url, pool_size=settings.pool_size, max_overflow=20, **options)
    _ping_when_idle(engine, settings.ping_after_idle_seconds)
    return engine


def get_engine(database_url: str, settings: DatabaseSettings = DEFAULT_SETTINGS) -> Engine:
    """One engine (one pool) per database URL per process (a service's uses all pass the same settings)."""
    key = (database_url, settings)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        url = make_url(database_url)
        options = {"hide_parameters": True, "future": True}
        if url.get_backend_name() == "sqlite":
            options["connect_args"] = {"timeout": 0, "check_same_thread": False}
            engine = create_engine(url, **options)
            _prepare_sqlite(engine, url, settings.sqlite_lock_wait_seconds)
        else:
            engine = _server_engine(url, settings, **options)
        _engines[key] = engine
        _settings[engine.pool] = settings
        return engine


# For work a crash may undo without harm (a counter's step no committed work used, the outbox
# relay's marks): this transaction's commit does not wait for the WAL flush. In a transaction,
# run it first; before a statement that PreparedStatement.first runs on its own, send it in the
# same query string ("...; INSERT ..."), which PostgreSQL runs as one implicit transaction, so it
# lasts for that statement only.
UNSYNCED_COMMIT = "SET LOCAL synchronous_commit TO off"


class PreparedStatement:
    """One hot statement, compiled once for an engine's dialect, run on a DBAPI connection.

    SQLAlchemy's execution layer (a Connection, an execution context, the compiled-cache look-up
    and the bind processing of every parameter) cost about half of the time intake spent on its
    one submission statement. This keeps what matters of it: bound values go through their column
    types' own bind processors for the dialect (JSON, dates, UtcDateTime), a failure is raised as
    SQLAlchemy's exception (IntegrityError, OperationalError, ...), and a connection that died is
    discarded, not pooled.

    On PostgreSQL `first` also prepares the statement on the server, once per pooled connection
    (SQL PREPARE), and from then on sends only `EXECUTE name (values)`: the server no longer
    parses and plans it for every call (intake's submission: ~400 -> ~230 us of server CPU), and
    the client sends and quotes less, unless the engine's settings turn it off (DB_SERVER_SIDE_PREPARE=0,
    behind a pooler that does not keep a client on one server connection).
    """

    def __init__(self, statement, dialect, server_side=True):
        compiled = statement.compile(dialect=dialect)
        self.dialect = dialect
        self.sql = compiled.string
        self.processors = {name: processor for name, bind in compiled.binds.items()
                           if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        # A positional paramstyle (SQLite's qmark) takes the values in this order.
        self.positions = tuple(compiled.positiontup) if compiled.positional else None
        self.server_side = None
        if server_side and dialect.name == "postgresql":
            # The same statement with $1, $2, ... for PREPARE; EXECUTE passes the values in that order.
            numbered = statement.compile(dialect=type(dialect)(paramstyle="numeric_dollar"))
            name = "oss_" + hashlib.sha1(numbered.string.encode()).hexdigest()[:16]
            self.server_side = SimpleNamespace(
                name=name,
                prepare=f"PREPARE {name} AS {numbered.string}",
                execute=f"EXECUTE {name} ({', '.join(['%s'] * len(numbered.positiontup))})" if numbered.positiontup else f"EXECUTE {name}",
                positions=tuple(numbered.positiontup),
            )

    def first(self, engine: Engine, parameters: dict) -> tuple | None:
        """Execute with `parameters` (bind name -> value) on a pooled connection of `engine`, as a
        unit of work of its own; returns the first row.

        On PostgreSQL the connection is in autocommit for it (psycopg2 switches that without a
        round trip, where SQLAlchemy's isolation_level option sends a SET at every check-in), so
        the statement commits by itself: no BEGIN or COMMIT round trip, and as atomic as a
        transaction. A unit of work that fits one statement (intake's submission: the application,
        its first history entry and its outbox event in one statement of data-modifying CTEs)
        needs nothing more. Elsewhere the statement is committed afterwards."""
        try:
            connection = engine.raw_connection()
        except self.dialect.loaded_dbapi.Error as exc:
            # The pool hands out the driver's own error when it cannot connect: the database is away.
            raise self._translated(exc, True) from exc
        dbapi_connection = connection.dbapi_connection
        autocommit = self.dialect.name == "postgresql"
        invalidated = False
        try:
            if autocommit:
                dbapi_connection.autocommit = True
            try:
                if self.server_side is None or not settings_of(engine).server_side_prepare:
                    row = self._execute(dbapi_connection, parameters)
                else:
                    row = self._execute_prepared(connection, parameters)
                if not autocommit:
                    connection.commit()
                return row
            except self.dialect.loaded_dbapi.Error as exc:
                invalidated = self.dialect.is_disconnect(exc, dbapi_connection, None)
                if invalidated:
                    connection.invalidate(exc)
                raise self._translated(exc, invalidated) from exc
        finally:
            if autocommit and not invalidated:
                dbapi_connection.autocommit = False  # as the pool hands its connections out
            connection.close()

    def first_in(self, connection: Connection, parameters: dict) -> tuple | None:
        """Execute in the transaction of `connection` (a SQLAlchemy Connection, e.g. a session's,
        which also commits it); returns the first row, if the statement returns rows."""
        try:
            return self._execute(connection.connection.dbapi_connection, parameters)
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._translated(exc, False) from exc

    def _values(self, parameters, positions):
        processors = self.processors
        values = {name: processors[name](value) if name in processors else value for name, value in parameters.items()}
        return values if positions is None else tuple(values[name] for name in positions)

    def _execute(self, dbapi_connection, parameters):
        return self._run(dbapi_connection, self.sql, self._values(parameters, self.positions))

    def _execute_prepared(self, connection, parameters):
        """EXECUTE on a pooled connection (its `info` lives as long as its server connection),
        preparing first if this connection has not. A statement the server no longer knows (after
        a DISCARD ALL, say) is prepared again and executed once more."""
        server_side = self.server_side
        values = self._values(parameters, server_side.positions)
        prepared = connection.info.setdefault(PREPARED_NAMES, set())
        dbapi_connection = connection.dbapi_connection
        if server_side.name not in prepared:
            self._run(dbapi_connection, server_side.prepare, None)
            prepared.add(server_side.name)
        try:
            return self._run(dbapi_connection, server_side.execute, values)
        except self.dialect.loaded_dbapi.Error as exc:
            if getattr(exc, "pgcode", None) != UNKNOWN_PREPARED_STATEMENT:
                raise
        prepared.discard(server_side.name)
        self._run(dbapi_connection, server_side.prepare, None)
        prepared.add(server_side.name)
        return self._run(dbapi_connection, server_side.execute, values)

    @staticmethod
    def _run(dbapi_connection, sql, values):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, values)
            return cursor.fetchone() if cursor.description else None
        finally:
            cursor.close()

    def _translated(self, exc, invalidated):
        return DBAPIError.instance(self.sql, None, exc, self.dialect.loaded_dbapi.Error, hide_parameters=True,
                                   connection_invalidated=invalidated, dialect=self.dialect)


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(database_url: str, read_only: bool = False,
                    settings: DatabaseSettings = DEFAULT_SETTINGS) -> sessionmaker:
    """Sessions on the URL's engine. Read-only ones never take SQLite's write lock, so a worker
    holding it can still read through them (e.g. intake's catalogue copy) without waiting on itself."""
    engine = get_engine(database_url, settings)
    if read_only:
        engine = engine.execution_options(**{READ_ONLY: True})
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


class Database(DependencyProvider):
    """Gives each worker its own session on the service's DATABASE_URL; closed when the worker ends.

    The worker commits its unit of work itself; anything not committed is rolled back on close.
    """

    def setup(self) -> None:
        config = self.container.config
        self.url = config["DATABASE_URL"]
        self.settings = DatabaseSettings.from_config(config)
        self.Session = session_factory(self.url, settings=self.settings)
        self.sessions = {}

    def get_dependency(self, worker_ctx: WorkerContext) -> Session:
        session = self.Session()
        self.sessions[worker_ctx] = session
        return session

    def worker_teardown(self, worker_ctx: WorkerContext) -> None:
        session = self.sessions.pop(worker_ctx, None)
        if session is None:
            return
        try:
            session.close()
        except SQLAlchemyError as exc:
            # The connection died under the worker (a database restart, a cut network): closing rolls
            # back on it and fails. An error here would kill the whole service (nameko treats a
            # failing teardown as fatal); invalidating drops the connection without talking to the
            # server, and the pool connects afresh for the next worker.
            log.warning("closing a database session failed (%s); its connection is discarded", type(exc).__name__)
            session.invalidate()


def alembic_config(migrations_dir: Path, database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(migrations_dir: Path, database_url: str) -> None:
    """Bring a service's database to the newest schema revision (idempotent)."""
    command.upgrade(alembic_config(migrations_dir, database_url), "head")


def run_migrations_online(context, target_metadata) -> None:
    """Body of every service's migrations/env.py: migrate the URL the caller passed."""
    url = context.config.attributes.get("database_url")
    if url is None:
        raise RuntimeError("run migrations through oss_common.database.upgrade (oss migrate)")
    engine = create_engine(url, future=True, hide_parameters=True)
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite and make_url(url).database not in (None, "", ":memory:"):
        Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
