"""Fault tests run their own processes: they kill, cut and restart what the shared stack needs."""
import socket
import subprocess
import sys
import time

import pytest
import yaml
from sqlalchemy import create_engine, text

from oss_common.config import PROJECT_ROOT
from tests.conftest import as_caller, free_port, fresh_vhost
from tests.integration.conftest import SEED, Stack


@pytest.fixture
def fault_stack(databases, tmp_path):
    """The catalogue (seeded) on a fresh database and a fresh vhost; tests start the intakes they need."""
    with fresh_vhost("faults") as amqp_uri:
        yield from _fault_stack(amqp_uri, databases, tmp_path)


def _fault_stack(amqp_uri, databases, tmp_path):
    stack = Stack(amqp_uri, databases, tmp_path)
    stack.intakes = {}
    try:
        stack.catalogue_db = databases.new("catalogue")
        stack.urls["catalogue"] = stack.start("catalogue", database_url=stack.catalogue_db).url
        with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
            cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        yield stack
    finally:
        stack.stop_all()


class TcpProxy:
    """A TCP relay in front of a server, in a process of its own, that a test can cut and restore."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, str(target_port))
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.faults.tcp_proxy", str(self.port), *self.target],
                                        cwd=PROJECT_ROOT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("the proxy did not start listening")

    def cut(self):
        """Refuse new connections and reset the open ones, as a database host that went away."""
        self.process.kill()
        self.process.wait()

    restore = start

    def stop(self):
        if self.process and self.process.poll() is None:
            self.cut()


def reject_inserts(database_url, table, tracking_number=None):
    """A defect (as a bad migration would leave): rows cannot be written into `table` (only those of
    `tracking_number`, when given). Returns the fix."""
    engine = create_engine(database_url)
    only = f"NEW.tracking_number = '{tracking_number}'" if tracking_number else None
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text(f"CREATE TRIGGER poison BEFORE INSERT ON {table} {f'WHEN {only} ' if only else ''}"
                                    "BEGIN SELECT RAISE(ABORT, 'poison'); END"))
        else:
            raised = f"IF {only} THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW;" if only else "RAISE EXCEPTION 'poison';"
            connection.execute(text(f"CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN {raised} END $$ LANGUAGE plpgsql"))
            connection.execute(text(f"CREATE TRIGGER poison BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION poison()"))

    def fix():
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.execute(text("DROP TRIGGER poison"))
            else:
                connection.execute(text(f"DROP TRIGGER poison ON {table}"))
                connection.execute(text("DROP FUNCTION poison()"))
        engine.dispose()

    return fix
