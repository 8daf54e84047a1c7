"""`make run` (oss demo) starts the demo's identity provider and points the services at it, or says
plainly that it falls back to the project's own demo tokens where the provider cannot run."""
import pytest

from oss_common import cli
from oss_common.regions import deployment_regions
from oss_common.supervisor import IdentityProviderProcess


@pytest.fixture
def clean_environment(monkeypatch):
    """Neither setting in the environment, and whatever `oss demo` sets there undone afterwards (a
    bare delenv of an absent name records nothing to undo, and the services later tests start would
    inherit the demo provider's issuer)."""
    for name in ("AUTH_OIDC_ISSUER", "AUTH_OIDC_AUDIENCE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_provider_runs_for_every_desk_and_the_dashboard_and_the_services_take_its_tokens(clean_environment):
    clean_environment.setattr(IdentityProviderProcess, "installed", classmethod(lambda cls: True))
    provider, why_not = cli.demo_identity_provider(deployment_regions("jizzakh,namangan,fergana"))
    assert why_not is None and provider.issuer == "http://127.0.0.1:8400"
    redirects = provider.env["OIDC_REDIRECT_URIS"].split(",")
    for page in ("http://127.0.0.1:8104/desk/", "http://127.0.0.1:8105/desk/", "http://127.0.0.1:8103/desk/",
                 "http://127.0.0.1:8300/dashboard/", "http://localhost:8104/desk/"):
        assert page in redirects and f"{page}auth/callback" in redirects
    assert not any(":830" in uri and "/desk/" in uri for uri in redirects)  # no desk on reporting's ports
    assert cli.os.environ["AUTH_OIDC_ISSUER"] == provider.issuer and cli.os.environ["AUTH_OIDC_AUDIENCE"] == "urn:oss:api"
    banner = cli.sign_in_banner(provider)
    assert "jizzakh.operator     jizzakh-operator-demo" in banner and "ministry.analyst" in banner


def test_without_node_the_demo_says_it_falls_back_to_its_own_tokens(clean_environment):
    clean_environment.setattr(IdentityProviderProcess, "installed", classmethod(lambda cls: False))
    provider, why_not = cli.demo_identity_provider(deployment_regions("jizzakh"))
    assert provider is None and "NO IDENTITY PROVIDER" in why_not and "demo tokens" in why_not
    assert "AUTH_OIDC_ISSUER" not in cli.os.environ


def test_a_provider_already_named_is_used_instead(clean_environment):
    clean_environment.setenv("AUTH_OIDC_ISSUER", "https://id.example.uz/realms/oss")
    provider, why_not = cli.demo_identity_provider(deployment_regions("jizzakh"))
    assert provider is None and "https://id.example.uz/realms/oss" in why_not
