"""Regional or national notifications, chosen by the deployment files alone: `oss run --region`,
`oss run --national`, `oss migrate` and `oss status` run one or the other, never both."""
import pytest
import yaml

from oss_common.service_kinds import SERVICES, group_members, instances, service_class, service_config
from oss_common.config import PROJECT_ROOT
from oss_common.regions import get_region

NOTIFICATIONS = SERVICES["notifications"]


@pytest.fixture
def regions_dir(tmp_path, monkeypatch):
    for key in ("HTTP_PORT", "METRICS_PORT", "DATABASE_URL", "REGION", "NOTIFICATION_BINDINGS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OSS_REGIONS_DIR", str(tmp_path))
    return tmp_path


def national_file(folder, services):
    (folder / "national.yml").write_text(yaml.safe_dump({"region": "national", "services": services}), encoding="utf-8")


def names(members):
    return [(kind.name, region.slug if region else None) for kind, region in members]


def test_the_shipped_deployment_runs_notifications_per_region(monkeypatch):
    monkeypatch.setenv("OSS_REGIONS_DIR", str(PROJECT_ROOT / "deploy" / "regions"))
    assert ("notifications", "jizzakh") in names(group_members("jizzakh", False))
    assert "notifications" not in [name for name, _ in names(group_members(None, True))]
    assert instances(NOTIFICATIONS, [get_region("jizzakh"), get_region("fergana")]) == [get_region("jizzakh"), get_region("fergana")]


def test_listing_notifications_in_national_yml_switches_to_one_national_instance(regions_dir):
    national_file(regions_dir, {"catalogue": {}, "reporting": {}})
    assert "notifications" in [name for name, _ in names(group_members("namangan", False))]
    national_file(regions_dir, {"catalogue": {}, "reporting": {}, "notifications": {"NOTIFICATION_BINDINGS": "*.application.*"}})
    assert names(group_members(None, True)) == [("catalogue", None), ("notifications", None), ("reporting", None)]
    assert names(group_members("namangan", False)) == [("intake", "namangan"), ("reporting", "namangan")]
    assert instances(NOTIFICATIONS, [get_region("namangan")]) == [None]
    # Reporting keeps both its national and its regional instances.
    assert instances(SERVICES["reporting"], [get_region("namangan")]) == [None, get_region("namangan")]
    config = service_config(NOTIFICATIONS, None)
    assert config["NOTIFICATION_BINDINGS"] == "*.application.*"
    assert config["WEB_SERVER_ADDRESS"].endswith(":8200") and str(config["METRICS_PORT"]) == "9200"
    assert service_class(NOTIFICATIONS, None).name == "notifications"


def test_regional_ports_and_name(regions_dir):
    config = service_config(NOTIFICATIONS, get_region("fergana"))
    assert config["WEB_SERVER_ADDRESS"].endswith(":8203") and str(config["METRICS_PORT"]) == "9203"
    assert config["NOTIFICATION_BINDINGS"] == "" and config["REGION"] == "fergana"
    assert service_class(NOTIFICATIONS, get_region("fergana")).name == "notifications_fergana"
