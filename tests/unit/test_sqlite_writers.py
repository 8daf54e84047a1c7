"""SQLite write transactions of one process queue for one writer slot (oss_common.database)."""
import sqlite3

import eventlet
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from oss_common import database


def _engine(tmp_path, settings=database.DEFAULT_SETTINGS):
    engine = database.get_engine(f"sqlite:///{tmp_path / 'writers.db'}", settings)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return engine


@pytest.fixture(autouse=True)
def _dispose():
    yield
    database.dispose_engines()


@pytest.fixture
def engine(tmp_path):
    return _engine(tmp_path)


def _value(engine):
    with engine.connect() as connection:
        return connection.execute(text("SELECT value FROM counter")).scalar_one()


def test_green_threads_that_yield_inside_their_write_transaction_all_commit_in_turn(engine):
    def increment():
        with engine.begin() as connection:
            value = connection.execute(text("SELECT value FROM counter")).scalar_one()
            eventlet.sleep(0.001)  # another green thread runs while this one holds the write lock
            connection.execute(text("UPDATE counter SET value = :value"), {"value": value + 1})

    pool = eventlet.GreenPool(20)
    for _ in range(50):
        pool.spawn(increment)
    pool.waitall()
    assert _value(engine) == 50


def test_a_failed_transaction_gives_the_slot_back(engine):
    with pytest.raises(ZeroDivisionError), engine.begin():
        1 / 0
    with engine.begin() as connection:
        connection.execute(text("UPDATE counter SET value = 7"))
    assert _value(engine) == 7


def test_a_lock_held_by_another_process_times_out_then_the_slot_is_free_again(tmp_path):
    engine = _engine(tmp_path, database.DatabaseSettings(sqlite_lock_wait_seconds=0.2))
    holder = sqlite3.connect(engine.url.database, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OperationalError, match="locked"), engine.begin():
            pass
    finally:
        holder.rollback()
        holder.close()
    with engine.begin() as connection:
        connection.execute(text("UPDATE counter SET value = 3"))
    assert _value(engine) == 3
