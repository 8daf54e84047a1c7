"""Database settings travel the one configuration path: config.yml, then the region's deployment file,
then the environment (README's configuration reference)."""
import pytest
import yaml

from oss_common import database
from oss_common.config import ConfigurationError
from oss_common.regions import get_region
from oss_common.service_kinds import SERVICES, service_config

SETTINGS = ("DB_POOL_SIZE", "DB_PING_AFTER_IDLE_SECONDS", "DB_SERVER_SIDE_PREPARE", "SQLITE_LOCK_WAIT_SECONDS",
            "MAX_WORKERS", "DATABASE_URL", "HTTP_PORT", "METRICS_PORT", "REGION")
# Never connected to: building an engine and its pool opens no connection.
POSTGRES_URL = "postgresql://oss_intake@127.0.0.1:1/intake_jizzakh"


@pytest.fixture
def regions_dir(tmp_path, monkeypatch):
    for key in SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OSS_REGIONS_DIR", str(tmp_path))
    yield tmp_path
    database.dispose_engines()


def jizzakh_file(folder, intake_settings):
    document = {"region": "jizzakh", "services": {"intake": {"DATABASE_URL": POSTGRES_URL, **intake_settings}}}
    (folder / "jizzakh.yml").write_text(yaml.safe_dump(document), encoding="utf-8")


def intake_database():
    """Intake's session dependency, set up as its container sets it up, with Jizzakh's configuration."""
    config = service_config(SERVICES["intake"], get_region("jizzakh"))
    container = type("Container", (), {"config": config, "service_name": "intake_jizzakh"})()
    provider = database.Database().bind(container, "db")
    provider.setup()
    return provider


def test_a_pool_size_set_in_a_regions_file_takes_effect(regions_dir):
    jizzakh_file(regions_dir, {"DB_POOL_SIZE": 3, "DB_SERVER_SIDE_PREPARE": "off", "SQLITE_LOCK_WAIT_SECONDS": 2})
    provider = intake_database()
    engine = provider.Session.kw["bind"]
    assert engine.pool.size() == 3
    assert database.settings_of(engine) == database.DatabaseSettings(
        pool_size=3, server_side_prepare=False, sqlite_lock_wait_seconds=2.0)


def test_the_environment_wins_over_the_regions_file(regions_dir, monkeypatch):
    jizzakh_file(regions_dir, {"DB_POOL_SIZE": 3})
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    assert intake_database().Session.kw["bind"].pool.size() == 7


def test_the_pool_follows_max_workers_when_no_pool_size_is_set(regions_dir, monkeypatch):
    jizzakh_file(regions_dir, {})
    assert intake_database().settings.pool_size == 10
    monkeypatch.setenv("MAX_WORKERS", "4")
    assert intake_database().Session.kw["bind"].pool.size() == 4


def test_a_setting_that_is_not_a_number_is_a_configuration_error_naming_it(regions_dir):
    jizzakh_file(regions_dir, {"DB_POOL_SIZE": "many"})
    with pytest.raises(ConfigurationError, match="DB_POOL_SIZE='many'"):
        intake_database()
