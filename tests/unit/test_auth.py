"""Tokens and roles (oss_common.auth): what a forged, expired or misfitted token gets."""
import json
import time

import jwt
import pytest

from oss_common.auth import (
    ANALYST, CATALOGUE_ADMIN, OFFICER, OPERATOR, REGION_ADMIN, Forbidden, SigningKey, TrustedKeys, Unauthorized,
    authorize, bearer_token, issue_token, new_key_pair, read_token,
)
from oss_common.config import ConfigurationError
from tests.conftest import write_jwks


def issuer(region=None):
    private, public = new_key_pair(region)
    return SigningKey.from_jwk(private), public


SIGNER, PUBLIC = issuer()
FERGANA, FERGANA_PUBLIC = issuer("fergana")
KEYS = TrustedKeys(write_jwks(PUBLIC, FERGANA_PUBLIC))


def signed(claims, key=SIGNER):
    """A token with exactly these claims, signed as an issuer (or a forger holding `key`) would."""
    return jwt.encode(claims, key.key, algorithm="EdDSA", headers={"kid": key.kid})


def test_a_token_round_trips_to_its_principal():
    token = issue_token(SIGNER, OPERATOR, "aziza", region="jizzakh", centres=["jizzakh-city", "arnasoy"])
    principal = read_token(KEYS, token)
    assert (principal.subject, principal.role, principal.region) == ("aziza", OPERATOR, "jizzakh")
    assert principal.centres == ("jizzakh-city", "arnasoy")
    assert principal.actor == "operator:aziza"
    assert principal.is_staff_of("jizzakh") and not principal.is_staff_of("namangan")


def test_a_token_signed_with_another_key_is_refused():
    stranger = issuer()[0]
    with pytest.raises(Unauthorized) as refused:
        read_token(KEYS, issue_token(stranger, ANALYST, "someone"))
    assert refused.value.status == 401 and refused.value.fields == {"Authorization": ["unknown signing key"]}
    # A forger who names a trusted key's kid still cannot sign with it.
    with pytest.raises(Unauthorized) as refused:
        read_token(KEYS, issue_token(SigningKey(key=stranger.key, kid=SIGNER.kid), ANALYST, "someone"))
    assert refused.value.fields == {"Authorization": ["invalid token"]}


def test_an_hs256_token_is_refused_even_when_keyed_with_the_public_key():
    now = int(time.time())
    public_bytes = PUBLIC["x"].encode()
    token = jwt.encode({"iss": "oss", "sub": "x", "role": ANALYST, "iat": now, "exp": now + 60}, public_bytes,
                       algorithm="HS256", headers={"kid": SIGNER.kid})
    with pytest.raises(Unauthorized):
        read_token(KEYS, token)


def test_a_token_living_longer_than_twelve_hours_is_refused():
    now = int(time.time())
    token = signed({"iss": "oss", "sub": "x", "role": ANALYST, "iat": now, "exp": now + 13 * 3600})
    with pytest.raises(Unauthorized, match="longer"):
        read_token(KEYS, token)
    with pytest.raises(ValueError, match="12 hours"):
        issue_token(SIGNER, ANALYST, "x", ttl_seconds=13 * 3600)


def test_an_oblast_issuer_signs_for_its_own_staff_only():
    principal = read_token(KEYS, issue_token(FERGANA, OPERATOR, "f", region="fergana", centres=["fergana-city"]))
    assert (principal.region, principal.role) == ("fergana", OPERATOR)
    assert read_token(KEYS, issue_token(FERGANA, REGION_ADMIN, "it", region="fergana")).role == REGION_ADMIN
    for role, kwargs in ((OPERATOR, {"region": "jizzakh", "centres": ["jizzakh-city"]}), (ANALYST, {}),
                         (CATALOGUE_ADMIN, {})):
        with pytest.raises(ValueError, match="fergana's own issuer"):
            issue_token(FERGANA, role, "f", **kwargs)
    now = int(time.time())
    for claims in ({"iss": "oss-fergana", "role": OPERATOR, "region": "jizzakh", "centres": ["jizzakh-city"]},
                   {"iss": "oss-fergana", "role": ANALYST},
                   {"iss": "oss", "role": OPERATOR, "region": "fergana", "centres": ["fergana-city"]}):
        with pytest.raises(Unauthorized):
            read_token(KEYS, signed({"sub": "mallory", "iat": now, "exp": now + 60, **claims}, key=FERGANA))


def test_an_expired_token_is_refused_with_its_reason():
    token = issue_token(SIGNER, ANALYST, "someone", ttl_seconds=60, now=time.time() - 3600)
    with pytest.raises(Unauthorized) as refused:
        read_token(KEYS, token)
    assert refused.value.fields == {"Authorization": ["expired"]}


def test_a_token_without_expiry_is_refused():
    token = signed({"iss": "oss", "sub": "x", "role": ANALYST, "iat": int(time.time())})
    with pytest.raises(Unauthorized):
        read_token(KEYS, token)


def test_the_none_algorithm_is_refused():
    claims = {"iss": "oss", "sub": "x", "role": ANALYST, "iat": int(time.time()), "exp": int(time.time()) + 60}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(Unauthorized):
        read_token(KEYS, token)


def test_a_signed_token_with_claims_that_do_not_fit_its_role_is_refused():
    now = int(time.time())
    for claims in ({"role": "root"}, {"role": OPERATOR, "region": "atlantis", "centres": ["c"]},
                   {"role": OFFICER, "agencies": "khokimiyat", "region": "jizzakh"}):
        token = signed({"iss": "oss", "sub": "x", "iat": now, "exp": now + 60, **claims})
        with pytest.raises(Unauthorized):
            read_token(KEYS, token)


@pytest.mark.parametrize("role,kwargs,message", [
    (OPERATOR, {"region": "jizzakh"}, "centre"),
    (OPERATOR, {"centres": ["c"]}, "region"),
    (OFFICER, {"region": "jizzakh"}, "agency"),
    (ANALYST, {"region": "jizzakh"}, "national"),
    ("superuser", {}, "role"),
    (OPERATOR, {"region": "jizzakh", "centres": ["Has Spaces"]}, "codes"),
])
def test_issuing_refuses_claims_that_do_not_fit_the_role(role, kwargs, message):
    with pytest.raises(ValueError, match=message):
        issue_token(SIGNER, role, "someone", **kwargs)


def test_a_missing_or_private_key_set_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="AUTH_JWKS"):
        TrustedKeys("")
    with pytest.raises(ConfigurationError, match="cannot read"):
        TrustedKeys(str(tmp_path / "absent.json")).reload()
    private, _public = new_key_pair()
    with pytest.raises(ConfigurationError, match="private key"):
        TrustedKeys(write_jwks(private)).reload()


def test_a_key_added_to_the_jwks_counts_without_a_restart_and_a_retired_one_stops(tmp_path):
    clock = [0.0]
    newcomer, newcomer_public = issuer()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [PUBLIC]}))
    keys = TrustedKeys(str(path), max_age=300, reload_seconds=30, clock=lambda: clock[0])
    assert read_token(keys, issue_token(SIGNER, ANALYST, "a")).subject == "a"
    path.write_text(json.dumps({"keys": [PUBLIC, newcomer_public]}))
    clock[0] = 31
    assert read_token(keys, issue_token(newcomer, ANALYST, "b")).subject == "b"
    path.write_text(json.dumps({"keys": [newcomer_public]}))
    clock[0] = 400
    with pytest.raises(Unauthorized, match="does not trust"):
        read_token(keys, issue_token(SIGNER, ANALYST, "c"))


def test_the_header_must_be_a_bearer_token():
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer ", "abc"):
        with pytest.raises(Unauthorized):
            bearer_token(header)


def test_roles_and_regions_are_enforced():
    operator = read_token(KEYS, issue_token(SIGNER, OPERATOR, "o", region="jizzakh", centres=["jizzakh-city"]))
    analyst = read_token(KEYS, issue_token(SIGNER, ANALYST, "a"))
    assert authorize(operator, (OPERATOR, OFFICER), "jizzakh") is operator
    with pytest.raises(Forbidden, match="for jizzakh, not namangan"):
        authorize(operator, (OPERATOR,), "namangan")
    with pytest.raises(Forbidden, match="may not"):
        authorize(operator, (OFFICER,), "jizzakh")
    # The ministry's roles are national: any region's instance accepts them for what they may do.
    assert authorize(analyst, (ANALYST,), "namangan") is analyst
    with pytest.raises(Forbidden):
        authorize(analyst, (CATALOGUE_ADMIN,), None)

