"""A worker's session whose connection died must not take the service down when the worker ends."""
from sqlalchemy.exc import OperationalError

from oss_common.database import Database


class DeadConnectionSession:
    def __init__(self):
        self.invalidated = False

    def close(self):
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection unexpectedly"))

    def invalidate(self):
        self.invalidated = True


def test_a_failing_close_discards_the_connection_instead_of_raising():
    database = Database()
    worker = object()  # a worker context: only its identity matters here
    session = DeadConnectionSession()
    database.sessions = {worker: session}
    database.worker_teardown(worker)
    assert session.invalidated and database.sessions == {}
