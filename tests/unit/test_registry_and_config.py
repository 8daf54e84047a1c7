"""The region registry, the config loader's ${VAR:default} substitution, and the `oss` command's help."""
import subprocess
import sys

import pytest

from oss_common.config import PROJECT_ROOT, ConfigurationError, load_config
from oss_common.regions import all_regions, deployment_regions, get_region

# ISO 3166-2:UZ, n = position in alphabetical order of the codes (ARCHITECTURE.md).
DIVISIONS = ["UZ-AN", "UZ-BU", "UZ-FA", "UZ-JI", "UZ-NG", "UZ-NW", "UZ-QA", "UZ-QR", "UZ-SA", "UZ-SI", "UZ-SU",
             "UZ-TK", "UZ-TO", "UZ-XO"]


def test_the_registry_lists_all_fourteen_divisions_numbered_by_iso_code():
    regions = sorted(all_regions(), key=lambda region: region.n)
    assert [region.iso for region in regions] == DIVISIONS
    assert [region.n for region in regions] == list(range(1, 15))
    assert len({region.slug for region in regions}) == 14
    assert len({region.prefix for region in regions}) == 14
    for region in regions:
        assert set(region.names) == {"uz", "ru", "en"} and all(region.names.values()), region.slug


@pytest.mark.parametrize("slug, n, prefix", [("fergana", 3, "FA"), ("jizzakh", 4, "JI"), ("namangan", 5, "NG")])
def test_first_rollout_oblasts_have_districts_centres_and_their_ports(slug, n, prefix):
    region = get_region(slug)
    assert (region.n, region.prefix) == (n, prefix)
    assert region.port(8100) == 8100 + n
    assert len(region.districts) >= 5
    assert len({district.code for district in region.districts}) == len(region.districts)
    assert all(set(district.names) == {"uz", "ru", "en"} for district in region.districts)
    assert region.centre(region.main_centre) is not None
    assert all(region.district(centre.district) is not None for centre in region.centres)


def test_an_unknown_region_is_a_start_up_error_naming_the_known_ones():
    with pytest.raises(ConfigurationError, match=r"unknown region 'atlantis'.*jizzakh"):
        get_region("atlantis")
    with pytest.raises(ConfigurationError, match="unknown region 'atlantis'"):
        deployment_regions("jizzakh,atlantis")
    with pytest.raises(ConfigurationError, match="no regions configured"):
        deployment_regions("")


def test_config_takes_the_environment_then_the_runners_default_then_the_files(tmp_path, monkeypatch):
    path = tmp_path / "config.yml"
    path.write_text("AMQP_URI: ${AMQP_URI:amqp://guest:guest@127.0.0.1:5672/}\n"
                    "DATABASE_URL: ${DATABASE_URL:sqlite:///var/x.db}\n"
                    "HTTP_PORT: ${HTTP_PORT:8000}\n", encoding="utf-8")
    monkeypatch.delenv("AMQP_URI", raising=False)
    monkeypatch.delenv("HTTP_PORT", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/intake")
    config = load_config(path, overrides={"DATABASE_URL": "sqlite:///ignored.db", "HTTP_PORT": 8104})
    assert config["AMQP_URI"] == "amqp://guest:guest@127.0.0.1:5672/"
    assert config["DATABASE_URL"] == "postgresql://db/intake"
    assert config["HTTP_PORT"] == 8104
    assert "HTTP_PORT" not in __import__("os").environ, "a runner's default does not leak into the environment"


@pytest.mark.parametrize("argv, expected", [
    ([], ["run", "status", "migrate", "catalogue", "token", "broker", "reporting"]),
    (["run"], ["--region", "--national", "--service"]),
    (["status"], ["--regions"]),
    (["catalogue", "load"], ["FILE"]),
    (["token", "issue"], ["--role", "--region", "--ttl-hours"]),
])
def test_every_oss_command_explains_itself(argv, expected):
    result = subprocess.run([sys.executable, "-m", "oss_common.cli", *argv, "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for word in expected:
        assert word in result.stdout, f"`oss {' '.join(argv)} --help` does not mention {word}"
