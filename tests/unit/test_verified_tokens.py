"""The short memory of verified tokens (oss_common.auth.VerifiedTokens): it answers as read_token would."""
import time

import pytest

from oss_common.auth import (
    ANALYST, OPERATOR, SigningKey, TrustedKeys, Unauthorized, VerifiedTokens, issue_token, new_key_pair, read_token,
)
from tests.conftest import write_jwks


def issuer():
    private, public = new_key_pair()
    return SigningKey.from_jwk(private), TrustedKeys(write_jwks(public))


SIGNER, KEYS = issuer()


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_a_remembered_token_gives_the_same_principal_without_verifying_again(monkeypatch):
    token = issue_token(SIGNER, OPERATOR, "aziza", region="jizzakh", centres=["jizzakh-city"])
    tokens = VerifiedTokens()
    first = tokens.read(KEYS, token)
    assert first == read_token(KEYS, token)
    monkeypatch.setattr("oss_common.auth.jwt.decode", lambda *args, **kwargs: pytest.fail("verified again"))
    assert tokens.read(KEYS, token) is first


def test_a_token_is_never_answered_from_memory_past_its_expiry(monkeypatch):
    issued = time.time()
    token = issue_token(SIGNER, ANALYST, "someone", ttl_seconds=10, now=issued)
    clock = Clock(issued)
    tokens = VerifiedTokens(ttl=3600, clock=clock)
    principal = tokens.read(KEYS, token)
    monkeypatch.setattr("oss_common.auth._verify", lambda keys, token: (_ for _ in ()).throw(Unauthorized("expired")))
    clock.now = issued + 10 + 29  # within the 30 s leeway read_token allows past exp
    assert tokens.read(KEYS, token) is principal
    clock.now = issued + 10 + 30  # read_token refuses from here on; so must the memory
    with pytest.raises(Unauthorized, match="expired"):
        tokens.read(KEYS, token)


def test_a_remembered_token_is_checked_again_after_the_ttl(monkeypatch):
    token = issue_token(SIGNER, ANALYST, "someone")
    clock = Clock(time.time())
    tokens = VerifiedTokens(ttl=5, clock=clock)
    tokens.read(KEYS, token)
    clock.now += 6
    monkeypatch.setattr("oss_common.auth._verify", lambda keys, token: (_ for _ in ()).throw(Unauthorized("checked")))
    with pytest.raises(Unauthorized, match="checked"):
        tokens.read(KEYS, token)


def test_another_key_and_invalid_tokens_are_never_answered_from_memory():
    token = issue_token(SIGNER, ANALYST, "someone")
    tokens = VerifiedTokens()
    tokens.read(KEYS, token)
    with pytest.raises(Unauthorized):
        tokens.read(issuer()[1], token)
    with pytest.raises(Unauthorized):
        tokens.read(KEYS, token + "x")
    with pytest.raises(Unauthorized):
        tokens.read(KEYS, token + "x")


def test_memory_stays_bounded():
    tokens = VerifiedTokens(max_entries=3)
    for index in range(10):
        tokens.read(KEYS, issue_token(SIGNER, ANALYST, f"user{index}"))
    assert len(tokens._entries) <= 3
