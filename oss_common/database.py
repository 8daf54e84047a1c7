"""Engines, the per-worker SQLAlchemy session dependency and Alembic migrations for every service."""
import logging
import os
import threading
import time
from pathlib import Path

from eventlet import sleep as _sleep

from alembic import command
from alembic.config import Config as AlembicConfig
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

log = logging.getLogger(__name__)

SQLITE_LOCK_WAIT_SECONDS = float(os.environ.get("SQLITE_LOCK_WAIT_SECONDS") or 30.0)
READ_ONLY = "oss_read_only"

_engines = {}
_engines_lock = threading.Lock()


def _make_green_psycopg():
    """psycopg2 blocks the whole process under eventlet unless made cooperative."""
    try:
        import eventlet.patcher
    except ImportError:  # pragma: no cover - eventlet is a hard dependency
        return
    if eventlet.patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()


def _prepare_sqlite(engine, url):
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

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        if connection.get_execution_options().get(READ_ONLY):
            # A reader sees a consistent WAL snapshot without any lock.
            connection.exec_driver_sql("BEGIN")
            return
        # IMMEDIATE takes the write lock up front, so two processes of one region never deadlock
        # upgrading a read lock. While another holds it, wait cooperatively (eventlet.sleep),
        # so the holder, which may be in this very process, can finish.
        deadline = time.monotonic() + SQLITE_LOCK_WAIT_SECONDS
        delay = 0.001
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
            _sleep(delay)
            delay = min(delay * 2, 0.05)


def get_engine(database_url):
    """One engine (one pool) per database URL per process."""
    with _engines_lock:
        engine = _engines.get(database_url)
        if engine is not None:
            return engine
        url = make_url(database_url)
        options = {"hide_parameters": True, "future": True}
        if url.get_backend_name() == "sqlite":
            options["connect_args"] = {"timeout": 0, "check_same_thread": False}
            engine = create_engine(url, **options)
            _prepare_sqlite(engine, url)
        else:
            if url.get_backend_name() == "postgresql":
                _make_green_psycopg()
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **options)
        _engines[database_url] = engine
        return engine


def dispose_engines():
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(database_url, read_only=False):
    """Sessions on the URL's engine. Read-only ones never take SQLite's write lock, so a worker
    holding it can still read through them (e.g. intake's catalogue copy) without waiting on itself."""
    engine = get_engine(database_url)
    if read_only:
        engine = engine.execution_options(**{READ_ONLY: True})
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


class Database(DependencyProvider):
    """Gives each worker its own session on the service's DATABASE_URL; closed when the worker ends.

    The worker commits its unit of work itself; anything not committed is rolled back on close.
    """

    def setup(self):
        self.url = self.container.config["DATABASE_URL"]
        self.Session = session_factory(self.url)
        self.sessions = {}

    def get_dependency(self, worker_ctx):
        session = self.Session()
        self.sessions[worker_ctx] = session
        return session

    def worker_teardown(self, worker_ctx):
        session = self.sessions.pop(worker_ctx, None)
        if session is not None:
            session.close()


def alembic_config(migrations_dir, database_url):
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(migrations_dir, database_url):
    """Bring a service's database to the newest schema revision (idempotent)."""
    command.upgrade(alembic_config(migrations_dir, database_url), "head")


def run_migrations_online(context, target_metadata):
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
