"""Tokens of a standard OpenID Connect provider (oss_common.auth.OidcIssuer): keys found through the
discovery document (read here from memory), claims mapped to the platform's, and every way a token
can be wrong answered 401."""
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from oss_common import auth
from oss_common.auth import OidcIssuer, TrustedKeys, Unauthorized, claim_mapping, read_token
from oss_common.config import ConfigurationError

ISSUER = "https://id.example.uz/realms/oss"
AUDIENCE = "urn:oss:api"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def published(private_key, algorithm, kid, **extra):
    jwk = json.loads((ECAlgorithm if algorithm == "ES256" else RSAAlgorithm).to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, **extra}


@pytest.fixture
def provider(monkeypatch):
    documents = {
        f"{ISSUER}/.well-known/openid-configuration": {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/certs"},
        f"{ISSUER}/certs": {"keys": [published(EC_KEY, "ES256", "ec-1", alg="ES256", use="sig"),
                                     published(RSA_KEY, "RS256", "rsa-1"),  # no alg: RS256 for an RSA key
                                     published(RSA_KEY, "RS256", "rsa-enc", use="enc")]},
    }
    monkeypatch.setattr(auth, "_read_jwks", lambda source: documents[source])
    keys = TrustedKeys(["unused.json"])  # the platform's own keys are never read for a provider's token
    keys.oidc = OidcIssuer(ISSUER, AUDIENCE, "role=realm_access.roles,region=oss.region,centres=oss.centres")
    keys.oidc.reload()
    return keys


def token(claims=None, key=EC_KEY, algorithm="ES256", kid="ec-1", **overrides):
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "9b2c-operator", "iat": now, "exp": now + 300,
            "realm_access": {"roles": ["offline_access", "operator"]},
            "oss": {"region": "jizzakh", "centres": ["jizzakh-city"]}, **(claims or {})}
    body.update(overrides)
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def test_a_providers_token_maps_to_a_principal(provider):
    principal = read_token(provider, token())
    assert (principal.subject, principal.role, principal.region, principal.centres) == \
        ("9b2c-operator", "operator", "jizzakh", ("jizzakh-city",))
    assert principal.actor == "operator:9b2c-operator"
    rsa_signed = read_token(provider, token(key=RSA_KEY, algorithm="RS256", kid="rsa-1"))
    assert rsa_signed.role == "operator"


@pytest.mark.parametrize("wrong", [
    {"aud": "someone-else"},
    {"iss": ISSUER + "/other"},
    {"exp": int(time.time()) - 3600},
    {"iat": int(time.time()), "exp": int(time.time()) + 13 * 3600},  # longer than a working day
    {"realm_access": {"roles": ["operator", "officer"]}},  # two platform roles: which?
    {"realm_access": {"roles": ["offline_access"]}},  # none
    {"oss": {"region": "atlantis", "centres": ["x"]}},
    {"sub": "a subject with spaces"},
])
def test_a_token_that_does_not_fit_is_401(provider, wrong):
    with pytest.raises(Unauthorized):
        read_token(provider, token(**wrong))


def test_keys_are_held_to_their_algorithm_and_use(provider):
    with pytest.raises(Unauthorized):  # an EC key's kid on an RS256 signature
        read_token(provider, token(key=RSA_KEY, algorithm="RS256", kid="ec-1"))
    with pytest.raises(Unauthorized):  # an encryption key is not trusted to sign
        read_token(provider, token(key=RSA_KEY, algorithm="RS256", kid="rsa-enc"))
    with pytest.raises(Unauthorized):  # a symmetric signature (the public key as an HMAC secret)
        read_token(provider, jwt.encode({"iss": ISSUER}, "not-a-key-of-the-provider-at-all-0123456789",
                                        algorithm="HS256", headers={"kid": "ec-1"}))
    with pytest.raises(Unauthorized):
        read_token(provider, token(kid="unknown"))


def test_a_discovery_document_of_another_issuer_stops_the_service(monkeypatch):
    monkeypatch.setattr(auth, "_read_jwks", lambda source: {"issuer": "https://evil.example", "jwks_uri": "x"})
    with pytest.raises(ConfigurationError):
        OidcIssuer(ISSUER, AUDIENCE).reload()


def test_the_claim_mapping():
    assert claim_mapping("") == {"role": "role", "region": "region", "centres": "centres", "agencies": "agencies"}
    assert claim_mapping("role=realm_access.roles, agencies=oss_agencies")["agencies"] == "oss_agencies"
    for wrong in ("colour=blue", "role=", "role=has space"):
        with pytest.raises(ConfigurationError):
            claim_mapping(wrong)
    with pytest.raises(ConfigurationError):
        OidcIssuer("id.example.uz", AUDIENCE)
