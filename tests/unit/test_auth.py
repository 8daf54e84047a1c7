"""Tokens and roles (oss_common.auth): what a forged, expired or misfitted token gets."""
import time

import jwt
import pytest

from oss_common.auth import (
    ANALYST, CATALOGUE_ADMIN, OFFICER, OPERATOR, Forbidden, Unauthorized, authorize, bearer_token, check_secret,
    issue_token, read_token,
)
from oss_common.config import ConfigurationError

SECRET = "k" * 40


def test_a_token_round_trips_to_its_principal():
    token = issue_token(SECRET, OPERATOR, "aziza", region="jizzakh", centres=["jizzakh-city", "arnasoy"])
    principal = read_token(SECRET, token)
    assert (principal.subject, principal.role, principal.region) == ("aziza", OPERATOR, "jizzakh")
    assert principal.centres == ("jizzakh-city", "arnasoy")
    assert principal.actor == "operator:aziza"
    assert principal.is_staff_of("jizzakh") and not principal.is_staff_of("namangan")


def test_a_token_signed_with_another_key_is_refused():
    token = issue_token("x" * 40, ANALYST, "someone")
    with pytest.raises(Unauthorized) as refused:
        read_token(SECRET, token)
    assert refused.value.status == 401 and refused.value.fields == {"Authorization": ["invalid token"]}


def test_an_expired_token_is_refused_with_its_reason():
    token = issue_token(SECRET, ANALYST, "someone", ttl_seconds=60, now=time.time() - 3600)
    with pytest.raises(Unauthorized) as refused:
        read_token(SECRET, token)
    assert refused.value.fields == {"Authorization": ["expired"]}


def test_a_token_without_expiry_is_refused():
    token = jwt.encode({"iss": "oss", "sub": "x", "role": ANALYST, "iat": int(time.time())}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        read_token(SECRET, token)


def test_the_none_algorithm_is_refused():
    claims = {"iss": "oss", "sub": "x", "role": ANALYST, "iat": int(time.time()), "exp": int(time.time()) + 60}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(Unauthorized):
        read_token(SECRET, token)


def test_a_signed_token_with_claims_that_do_not_fit_its_role_is_refused():
    now = int(time.time())
    for claims in ({"role": "root"}, {"role": OPERATOR, "region": "atlantis", "centres": ["c"]},
                   {"role": OFFICER, "agencies": "khokimiyat", "region": "jizzakh"}):
        token = jwt.encode({"iss": "oss", "sub": "x", "iat": now, "exp": now + 60, **claims}, SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized):
            read_token(SECRET, token)


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
        issue_token(SECRET, role, "someone", **kwargs)


def test_a_short_or_missing_key_is_a_configuration_error():
    for secret in (None, "", "short"):
        with pytest.raises(ConfigurationError, match="AUTH_SECRET"):
            check_secret(secret)


def test_the_header_must_be_a_bearer_token():
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer ", "abc"):
        with pytest.raises(Unauthorized):
            bearer_token(header)


def test_roles_and_regions_are_enforced():
    operator = read_token(SECRET, issue_token(SECRET, OPERATOR, "o", region="jizzakh", centres=["jizzakh-city"]))
    analyst = read_token(SECRET, issue_token(SECRET, ANALYST, "a"))
    assert authorize(operator, (OPERATOR, OFFICER), "jizzakh") is operator
    with pytest.raises(Forbidden, match="for jizzakh, not namangan"):
        authorize(operator, (OPERATOR,), "namangan")
    with pytest.raises(Forbidden, match="may not"):
        authorize(operator, (OFFICER,), "jizzakh")
    # The ministry's roles are national: any region's instance accepts them for what they may do.
    assert authorize(analyst, (ANALYST,), "namangan") is analyst
    with pytest.raises(Forbidden):
        authorize(analyst, (CATALOGUE_ADMIN,), None)
