"""PostgreSQL pools (oss_common.database): pings only after idling, recovery from dead connections,
and intake's tracking counter committed outside the submission's transaction."""
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from oss_common import database
from services.intake.operations import next_sequence


@pytest.fixture
def pg_url(databases):
    if databases.backend != "postgresql":
        pytest.skip("PostgreSQL pools only")
    url = databases.new("pool")
    yield url
    database.dispose_engines()


def _kill_backends(url):
    """Terminate every server connection to the URL's database but the caller's (a restart, as pools see it)."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    admin.dispose()


def _backend_pid(engine):
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_used_moments_ago_is_not_pinged(pg_url, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine = database.get_engine(pg_url)
    pings = []
    original = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or original(connection))
    for _ in range(5):
        _backend_pid(engine)
    assert pings == []


def test_an_idle_connection_that_died_is_replaced_at_checkout(pg_url, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = database.get_engine(pg_url)
    before = _backend_pid(engine)
    _kill_backends(pg_url)
    assert _backend_pid(engine) != before  # the ping failed, the pool connected afresh, no error


def test_a_connection_that_died_fails_one_statement_then_the_pool_heals(pg_url, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = database.get_engine(pg_url)
    with engine.connect() as first, engine.connect() as second:  # two pooled connections
        first.execute(text("SELECT 1"))
        second.execute(text("SELECT 1"))
    _kill_backends(pg_url)
    with pytest.raises(OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    # The disconnect invalidated the whole pool: the other dead connection is not handed out.
    for _ in range(3):
        assert _backend_pid(engine)


def test_the_tracking_counter_commits_on_its_own_and_holds_no_lock_in_the_submission(pg_url):
    engine = database.get_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tracking_sequences (year INTEGER PRIMARY KEY, last_value INTEGER NOT NULL)"))
    with Session(engine) as first, Session(engine) as second:
        first.execute(text("SELECT 1"))  # both submissions' transactions are open
        second.execute(text("SELECT 1"))
        assert next_sequence(first, 2026) == 1
        # Inside the transaction this would wait for `first` to end (here: block forever).
        assert next_sequence(second, 2026) == 2
        first.rollback()  # a failed submission leaves a gap, never a reused number
        second.commit()
    with Session(engine) as third:
        assert next_sequence(third, 2026) == 3
        assert next_sequence(third, 2027) == 1
