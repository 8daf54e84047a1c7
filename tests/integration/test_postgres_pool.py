"""PostgreSQL pools (oss_common.database): pings only after idling, recovery from dead connections,
and intake's tracking counter committed outside the submission's transaction."""
import time
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from oss_common import database
from services.intake.repository import TrackingNumbers, next_sequence


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
    engine = database.get_engine(pg_url, database.DatabaseSettings(ping_after_idle_seconds=60.0))
    pings = []
    original = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or original(connection))
    for _ in range(5):
        _backend_pid(engine)
    assert pings == []


def test_an_idle_connection_that_died_is_replaced_at_checkout(pg_url):
    engine = database.get_engine(pg_url, database.DatabaseSettings(ping_after_idle_seconds=0.0))
    before = _backend_pid(engine)
    _kill_backends(pg_url)
    assert _backend_pid(engine) != before  # the ping failed, the pool connected afresh, no error


def test_a_connection_that_died_fails_one_statement_then_the_pool_heals(pg_url):
    engine = database.get_engine(pg_url, database.DatabaseSettings(ping_after_idle_seconds=3600.0))
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


def _counter_table(engine):
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tracking_sequences (year INTEGER PRIMARY KEY, last_value INTEGER NOT NULL)"))


def _counter(engine, year):
    with engine.connect() as connection:
        return connection.execute(text("SELECT last_value FROM tracking_sequences WHERE year = :year"), {"year": year}).scalar()


def test_a_busy_process_takes_tracking_numbers_in_blocks_and_an_idle_one_singly(pg_url):
    engine = database.get_engine(pg_url)
    _counter_table(engine)
    numbers = TrackingNumbers()
    numbers.IDLE_SECONDS = 0.2
    with Session(engine) as session:
        assert numbers.take(session, 2026) == 1 and _counter(engine, 2026) == 1  # the first: a block of one
        burst = [numbers.take(session, 2026) for _ in range(300)]
        # One process hands out every number in order, without gaps, while it is busy...
        assert burst == list(range(2, 302))
        # ...having taken them in growing blocks: the counter is at most one block ahead.
        assert 301 <= _counter(engine, 2026) < 301 + TrackingNumbers.MAX_BLOCK
        block_end = _counter(engine, 2026)
        time.sleep(0.3)
        # The rest of the block is handed out first (a process that stopped now would leave it unused)...
        assert [numbers.take(session, 2026) for _ in range(block_end - 301)] == list(range(302, block_end + 1))
        # ...then, idle for longer than IDLE_SECONDS, the process takes numbers one by one again.
        assert numbers.take(session, 2026) == block_end + 1 and _counter(engine, 2026) == block_end + 1
        time.sleep(0.3)
        assert numbers.take(session, 2026) == block_end + 2 and _counter(engine, 2026) == block_end + 2
        assert numbers.take(session, 2027) == 1  # every year its own counter


def test_two_busy_processes_never_hand_out_the_same_tracking_number(pg_url):
    engine = database.get_engine(pg_url)
    _counter_table(engine)
    first, second = TrackingNumbers(), TrackingNumbers()  # two processes' allocators on one database
    taken = []

    def take_many(numbers):
        with Session(engine) as session:
            for _ in range(400):
                taken.append(numbers.take(session, 2026))

    pool = eventlet.GreenPool()
    for numbers in (first, second, first, second):  # two workers in each process
        pool.spawn(take_many, numbers)
    pool.waitall()
    assert len(taken) == 1600 and len(set(taken)) == 1600


def _prepared_insert(engine):
    metadata = MetaData()
    table = Table("prepared_rows", metadata, Column("id", Integer, primary_key=True), Column("code", String(8), unique=True),
                  Column("body", JSON), Column("at", database.UtcDateTime))
    metadata.create_all(engine)
    statement = insert(table).values(code=bindparam("code", type_=table.c.code.type), body=bindparam("body", type_=JSON),
                                     at=bindparam("at", type_=database.UtcDateTime)).returning(table.c.id)
    return table, database.PreparedStatement(statement, engine.dialect)


def test_a_prepared_statement_binds_through_column_types_and_raises_sqlalchemy_errors(pg_url):
    engine = database.get_engine(pg_url)
    table, prepared = _prepared_insert(engine)
    tashkent_noon = datetime(2026, 12, 6, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    row_id = prepared.first(engine, {"code": "a", "body": {"ism": "Ойбек", "n": [1, 2]}, "at": tashkent_noon})[0]
    with engine.connect() as connection:
        stored = connection.execute(select(table).where(table.c.id == row_id)).one()
    assert stored.body == {"ism": "Ойбек", "n": [1, 2]}  # JSON through the column's processor
    assert stored.at == tashkent_noon and stored.at.utcoffset() == timedelta(0)  # stored as the UTC instant
    with pytest.raises(IntegrityError):  # SQLAlchemy's exception, as the callers catch it
        prepared.first(engine, {"code": "a", "body": {}, "at": tashkent_noon})
    with pytest.raises(ValueError, match="naive"):
        prepared.first(engine, {"code": "b", "body": {}, "at": datetime(2026, 12, 6, 12, 0)})
    assert prepared.first(engine, {"code": "b", "body": {}, "at": tashkent_noon})[0] > row_id  # the pool still serves


def test_a_prepared_statement_on_a_dead_connection_fails_once_and_the_pool_heals(pg_url, monkeypatch):
    engine = database.get_engine(pg_url, database.DatabaseSettings(ping_after_idle_seconds=3600.0))
    _table, prepared = _prepared_insert(engine)
    now = datetime.now(timezone.utc)
    prepared.first(engine, {"code": "a", "body": {}, "at": now})
    _kill_backends(pg_url)
    with pytest.raises(OperationalError) as failure:
        prepared.first(engine, {"code": "b", "body": {}, "at": now})
    assert failure.value.connection_invalidated  # 503 for the caller (oss_common.http), not 500
    assert prepared.first(engine, {"code": "c", "body": {}, "at": now})[0]


def _server_prepared(engine, name):
    """(prepared statements named `name`, executions of them) on the connection the pool hands out next."""
    connection = engine.raw_connection()
    try:
        cursor = connection.dbapi_connection.cursor()
        cursor.execute("SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements WHERE name = %s", (name,))
        return tuple(cursor.fetchone())
    finally:
        connection.close()


def test_a_hot_statement_is_prepared_on_the_server_once_per_connection_then_only_executed(pg_url):
    engine = database.get_engine(pg_url)
    table, prepared = _prepared_insert(engine)
    now = datetime.now(timezone.utc)
    ids = [prepared.first(engine, {"code": f"c{n}", "body": {"n": n}, "at": now})[0] for n in range(5)]
    assert _server_prepared(engine, prepared.server_side.name) == (1, 5)  # one connection: prepared once, run 5 times
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.id, table.c.code, table.c.body).order_by(table.c.id)).all()
    assert [tuple(row) for row in rows] == [(ids[n], f"c{n}", {"n": n}) for n in range(5)]


def test_a_statement_the_server_forgot_is_prepared_again(pg_url):
    engine = database.get_engine(pg_url)
    _table, prepared = _prepared_insert(engine)
    now = datetime.now(timezone.utc)
    prepared.first(engine, {"code": "a", "body": {}, "at": now})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # the pool's one connection
        connection.exec_driver_sql("DISCARD ALL")  # as a pooler resets a connection
    assert prepared.first(engine, {"code": "b", "body": {}, "at": now})[0]
    assert _server_prepared(engine, prepared.server_side.name) == (1, 1)


def test_a_failed_execution_keeps_the_prepared_statement(pg_url):
    engine = database.get_engine(pg_url)
    _table, prepared = _prepared_insert(engine)
    now = datetime.now(timezone.utc)
    prepared.first(engine, {"code": "a", "body": {}, "at": now})
    with pytest.raises(IntegrityError):
        prepared.first(engine, {"code": "a", "body": {}, "at": now})
    assert prepared.first(engine, {"code": "b", "body": {}, "at": now})[0]
    assert _server_prepared(engine, prepared.server_side.name) == (1, 3)


def test_server_side_preparing_can_be_turned_off(pg_url):
    engine = database.get_engine(pg_url, database.DatabaseSettings(server_side_prepare=False))
    _table, prepared = _prepared_insert(engine)
    assert prepared.first(engine, {"code": "a", "body": {"x": 1}, "at": datetime.now(timezone.utc)})[0]
    connection = engine.raw_connection()
    try:
        cursor = connection.dbapi_connection.cursor()
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0
    finally:
        connection.close()


def _backends_over_rounds(engine, workers, rounds=3):
    """The server processes `workers` concurrent units of work used, in each of `rounds` rounds."""
    used = []
    for _ in range(rounds):
        pids = []

        def work():
            with engine.connect() as connection:
                pids.append(connection.execute(text("SELECT pg_backend_pid() FROM pg_sleep(0.05)")).scalar_one())

        pool = eventlet.GreenPool()
        for _ in range(workers):
            pool.spawn(work)
        pool.waitall()
        used.append(set(pids))
    return used


def test_every_use_of_the_database_shares_one_pool_with_a_connection_per_concurrent_worker(pg_url):
    """Sessions, autocommit statements and the relay of a process share one pool. As many workers
    as MAX_WORKERS at once reuse its server connections: none is opened for one unit of work and
    closed after it, and the process keeps no more than MAX_WORKERS open."""
    pool_size = database.DEFAULT_SETTINGS.pool_size
    assert pool_size == 10  # MAX_WORKERS' default, as the services run
    engine = database.get_engine(pg_url)
    used = _backends_over_rounds(engine, pool_size)
    assert len(used[0]) == pool_size
    assert used[1] == used[0] and used[2] == used[0]
    # intake's submissions, Idempotency-Key look-ups and tracking counter (PreparedStatement.first)
    backend = database.PreparedStatement(text("SELECT pg_backend_pid() FROM pg_sleep(0.05)"), engine.dialect)
    pids = []
    pool = eventlet.GreenPool()
    for _ in range(pool_size):
        pool.spawn(lambda: pids.append(backend.first(engine, {})[0]))
    pool.waitall()
    assert set(pids) == used[0]
    burst = _backends_over_rounds(engine, pool_size + 5, rounds=1)[0]
    assert len(burst) == pool_size + 5  # a burst gets connections of its own...
    assert engine.pool.checkedin() == pool_size  # ...and only POOL_SIZE stay open after it


def test_an_unsynced_commit_lasts_for_its_own_statement(pg_url):
    engine = database.get_engine(pg_url)  # one connection, used by both statements
    unsynced = database.PreparedStatement(
        text(f"{database.UNSYNCED_COMMIT}; SELECT current_setting('synchronous_commit')"), engine.dialect, server_side=False)
    setting = database.PreparedStatement(text("SELECT current_setting('synchronous_commit')"), engine.dialect)
    assert unsynced.first(engine, {})[0] == "off"
    assert setting.first(engine, {})[0] == "on"
    with engine.connect() as connection:
        assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "on"


def test_a_connection_back_from_a_prepared_statement_runs_transactions_again(pg_url):
    engine = database.get_engine(pg_url)
    table, prepared = _prepared_insert(engine)
    now = datetime.now(timezone.utc)
    prepared.first(engine, {"code": "a", "body": {}, "at": now})  # in autocommit, on the pool's one connection
    with engine.connect() as connection:
        connection.execute(insert(table).values(code="b", body={}, at=now))
        connection.rollback()  # undone: the connection is transactional again
    with engine.connect() as connection:
        assert connection.execute(select(table.c.code)).scalars().all() == ["a"]
