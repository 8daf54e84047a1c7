"""The short memory of verified tokens (oss_common.auth.VerifiedTokens): it answers as read_token would."""
import time

import pytest

from oss_common.auth import ANALYST, OPERATOR, Unauthorized, VerifiedTokens, issue_token, read_token

SECRET = "k" * 40


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_a_remembered_token_gives_the_same_principal_without_verifying_again(monkeypatch):
    token = issue_token(SECRET, OPERATOR, "aziza", region="jizzakh", centres=["jizzakh-city"])
    tokens = VerifiedTokens()
    first = tokens.read(SECRET, token)
    assert first == read_token(SECRET, token)
    monkeypatch.setattr("oss_common.auth.jwt.decode", lambda *args, **kwargs: pytest.fail("verified again"))
    assert tokens.read(SECRET, token) is first


def test_a_token_is_never_answered_from_memory_past_its_expiry(monkeypatch):
    issued = time.time()
    token = issue_token(SECRET, ANALYST, "someone", ttl_seconds=10, now=issued)
    clock = Clock(issued)
    tokens = VerifiedTokens(ttl=3600, clock=clock)
    principal = tokens.read(SECRET, token)
    monkeypatch.setattr("oss_common.auth._verify", lambda secret, token: (_ for _ in ()).throw(Unauthorized("expired")))
    clock.now = issued + 10 + 29  # within the 30 s leeway read_token allows past exp
    assert tokens.read(SECRET, token) is principal
    clock.now = issued + 10 + 30  # read_token refuses from here on; so must the memory
    with pytest.raises(Unauthorized, match="expired"):
        tokens.read(SECRET, token)


def test_a_remembered_token_is_checked_again_after_the_ttl(monkeypatch):
    token = issue_token(SECRET, ANALYST, "someone")
    clock = Clock(time.time())
    tokens = VerifiedTokens(ttl=5, clock=clock)
    tokens.read(SECRET, token)
    clock.now += 6
    monkeypatch.setattr("oss_common.auth._verify", lambda secret, token: (_ for _ in ()).throw(Unauthorized("checked")))
    with pytest.raises(Unauthorized, match="checked"):
        tokens.read(SECRET, token)


def test_another_key_and_invalid_tokens_are_never_answered_from_memory():
    token = issue_token(SECRET, ANALYST, "someone")
    tokens = VerifiedTokens()
    tokens.read(SECRET, token)
    with pytest.raises(Unauthorized):
        tokens.read("x" * 40, token)
    with pytest.raises(Unauthorized):
        tokens.read(SECRET, token + "x")
    with pytest.raises(Unauthorized):
        tokens.read(SECRET, token + "x")


def test_memory_stays_bounded():
    tokens = VerifiedTokens(max_entries=3)
    for index in range(10):
        tokens.read(SECRET, issue_token(SECRET, ANALYST, f"user{index}"))
    assert len(tokens._entries) <= 3
