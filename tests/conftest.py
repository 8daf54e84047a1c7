"""Test fixtures: an isolated RabbitMQ vhost, SQLite and PostgreSQL databases, real service processes."""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # nameko's standalone RPC in the tests needs green sockets

from oss_common.broker import ensure_shared_exchanges  # noqa: E402
from oss_common.rpc import use_broker_permissions  # noqa: E402

use_broker_permissions()  # as `oss` does: the tests' RPC proxies meet the broker as the services do

import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import quote  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

BROKER = os.environ.get("OSS_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672")
POSTGRES_ADMIN_URL = os.environ.get("OSS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("OSS_REQUIRE_POSTGRES") == "1"


def write_jwks(*public_keys):
    """A JWKS file of these public keys, readable by every process of the test run."""
    handle, path = tempfile.mkstemp(prefix="oss-test-jwks-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump({"keys": list(public_keys)}, file)
    os.chmod(path, 0o644)
    return path


def _test_issuer():
    from oss_common.auth import SigningKey, new_key_pair

    private, public = new_key_pair()
    handle, key_file = tempfile.mkstemp(prefix="oss-test-signing-key-", suffix=".jwk")
    with os.fdopen(handle, "w") as file:
        json.dump(private, file)
    return SigningKey.from_jwk(private), key_file, write_jwks(public)


# The test deployments' token issuer: its private key (also in TEST_SIGNING_KEY_FILE, for the `oss`
# commands), its public key in TEST_JWKS (Stack.env gives the file to every service as AUTH_JWKS).
TEST_SIGNING_KEY, TEST_SIGNING_KEY_FILE, TEST_JWKS = _test_issuer()


def token(role, region=None, centres=None, agencies=None, subject=None, signing_key=None, **kwargs):
    """A signed token; staff of a region get every centre/agency of it unless narrowed."""
    from oss_common.auth import CENTRE_HEAD, OFFICER, OPERATOR, issue_token
    from oss_common.regions import get_region

    if role in (OPERATOR, CENTRE_HEAD) and centres is None:
        centres = [centre.code for centre in get_region(region).centres]
    if role == OFFICER and agencies is None:
        agencies = ALL_AGENCIES
    return issue_token(signing_key or TEST_SIGNING_KEY, role, subject or f"test-{role}", region=region,
                       centres=centres or (), agencies=agencies or (), **kwargs)


def forged_token(role, region=None, **kwargs):
    """A token that names the test issuer's key but is signed with another: what a forger makes."""
    from oss_common.auth import SigningKey, new_key_pair

    other = SigningKey.from_jwk(new_key_pair()[0])
    return token(role, region, signing_key=SigningKey(key=other.key, kid=TEST_SIGNING_KEY.kid), **kwargs)


class CallerAs:
    """Unit tests' stand-in for oss_common.callers.RpcCaller: the worker is called by these principals;
    an operation gets the first whose role it accepts, checked as the real one checks it."""

    def __init__(self, *principals, region=None):
        self.principals = principals
        self.region = region

    def require(self, *roles):
        from oss_common.auth import Forbidden, authorize

        for principal in self.principals:
            if principal.role in roles:
                return authorize(principal, roles, self.region)
        raise Forbidden(f"no caller with a role of {roles}")


def as_caller(role, region=None, **kwargs):
    """Context data for ClusterRpcProxy: RPC calls made as a test caller (see token())."""
    from oss_common.callers import caller_context

    return caller_context(token(role, region, **kwargs))


def auth(role, region=None, **kwargs):
    """`Authorization: Bearer ...` headers for a test caller (see token())."""
    return {"Authorization": f"Bearer {token(role, region, **kwargs)}"}


def _seed_agencies():
    import yaml

    from oss_common.config import PROJECT_ROOT

    seed = yaml.safe_load((PROJECT_ROOT / "services" / "catalogue" / "seed" / "services.yml").read_text(encoding="utf-8"))
    return sorted(agency["code"] for agency in seed["agencies"])


ALL_AGENCIES = _seed_agencies()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout=30.0, message="condition", interval=0.1):
    """The first true value `condition()` gives, asked every `interval` seconds; AssertionError naming
    `message` when `timeout` seconds pass without one. What every test waiting on another process uses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout:.0f}s")


REQUIRE_TOOLS = os.environ.get("OSS_REQUIRE_TOOLS") == "1"


def missing_tool(reason):
    """Skip for want of a tool the machine lacks, or fail where CI says every tool must be there."""
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (OSS_REQUIRE_TOOLS=1)")
    pytest.skip(reason)


@pytest.fixture
def rabbitmqctl_available():
    """For tests that administer the broker itself (import definitions, stop and start it)."""
    if shutil.which("rabbitmqctl") is None:
        missing_tool("needs rabbitmqctl on this machine (the broker's own package) to administer the broker")


def _rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def fresh_vhost(purpose="session"):
    """A RabbitMQ vhost of its own (deleted afterwards), so that the queues one group of tests
    leaves behind (and the events piling up in them) never reach another group's services."""
    vhost = f"oss-test-{purpose}-{uuid.uuid4().hex[:8]}"
    created = False
    if shutil.which("rabbitmqctl"):
        try:
            created = _rabbitmqctl("add_vhost", vhost).returncode == 0 and \
                _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode == 0
        except (OSError, subprocess.SubprocessError):
            created = False
    if not created and REQUIRE_TOOLS:
        pytest.fail("could not create a RabbitMQ vhost for the tests with rabbitmqctl (OSS_REQUIRE_TOOLS=1)")
    if not created:
        warnings.warn("rabbitmqctl could not create a vhost: the tests share the broker's default vhost '/'; "
                      "stop any running `make run` demo first")
    uri = f"{BROKER}/{quote(vhost, safe='')}" if created else f"{BROKER}/"
    ensure_shared_exchanges(uri)
    try:
        yield uri
    finally:
        if created:
            _rabbitmqctl("delete_vhost", vhost)


def rabbit_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    import base64
    import hashlib

    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@contextlib.contextmanager
def imported_definitions(region_slugs=("jizzakh", "namangan", "fergana")):
    """The deployment's broker definitions (oss_common.broker) imported as the deployment imports
    them, into a vhost and user names of their own (oss-t<tag>-...), every user with one password.
    Yields a function: principal (`intake_fergana`, `catalogue`, `ministry`) -> its AMQP URI."""
    from oss_common.broker import user_name
    from oss_common.cli import broker_definitions

    tag = uuid.uuid4().hex[:8]
    vhost, prefix, password = f"oss-deftest-{tag}", f"oss-t{tag}-", uuid.uuid4().hex
    document = broker_definitions(",".join(region_slugs), prefix=prefix)
    document["vhosts"] = [{"name": vhost}]
    for section in ("permissions", "topic_permissions", "exchanges", "policies", "bindings", "queues"):
        for item in document[section]:
            item["vhost"] = vhost
    for user in document["users"]:
        user["password_hash"] = rabbit_hash(password)
    # A world-readable file: rabbitmqctl may run as the rabbitmq user, who cannot read pytest's folders
    # (and this version refuses "-" for stdin).
    handle, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(document, file)
    os.chmod(path, 0o644)
    try:
        imported = subprocess.run(["rabbitmqctl", "import_definitions", path], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(path)
    assert imported.returncode == 0, imported.stderr
    host = BROKER.split("@", 1)[1].rstrip("/")
    try:
        yield lambda principal: f"amqp://{user_name(principal, prefix)}:{password}@{host}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        for user in document["users"]:
            _rabbitmqctl("delete_user", user["name"])


@pytest.fixture(scope="session")
def amqp_uri():
    """A vhost of its own for this test session, so tests never see a running demo's traffic."""
    with fresh_vhost() as uri:
        yield uri


def _postgres_available():
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


class DatabaseFactory:
    """Hands out empty databases of one backend; PostgreSQL ones are dropped at the end."""

    def __init__(self, backend, tmp_path_factory):
        self.backend = backend
        self.tmp = tmp_path_factory.mktemp(f"db-{backend}")
        self.created = []

    def new(self, name):
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / (name + '-' + uuid.uuid4().hex[:6] + '.db')}"
        database = f"oss_test_{name}_{uuid.uuid4().hex[:8]}".replace("-", "_")
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        engine.dispose()
        self.created.append(database)
        return str(make_url(POSTGRES_ADMIN_URL).set(database=database).render_as_string(hide_password=False))

    def drop_all(self):
        if not self.created:
            return
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for database in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def databases(request, tmp_path_factory):
    if request.param == "postgresql" and not _postgres_available():
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} (set OSS_TEST_POSTGRES_URL)"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    factory = DatabaseFactory(request.param, tmp_path_factory)
    yield factory
    factory.drop_all()
