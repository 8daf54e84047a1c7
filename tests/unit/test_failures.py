"""Which failures pass (retried with back-off for as long as it takes) and which do not (poison)."""
import socket

import pytest
from marshmallow import ValidationError
from nameko.exceptions import RpcTimeout, UnknownService
from sqlalchemy.exc import IntegrityError, OperationalError

from oss_common.consumers import DeadLetter
from oss_common.failures import RetryLater, is_transient, retry_delay
from services.notifications.exceptions import DeliveryDeferred, PermanentFailure


def _raised_from(cause, exc):
    try:
        try:
            raise cause
        except type(cause):
            raise exc
    except type(exc) as raised:
        return raised


@pytest.mark.parametrize("exc", [
    OperationalError("SELECT 1", {}, Exception("could not connect to server")),
    ConnectionRefusedError(), ConnectionResetError(), socket.timeout(), RpcTimeout(), UnknownService("catalogue"),
    RetryLater("gateway answered 503"), DeliveryDeferred("SMS gateway answered 503"),
])
def test_failures_that_pass(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    ValidationError({"tracking_number": ["missing"]}), KeyError("version"), DeadLetter("bad number"),
    IntegrityError("INSERT", {}, Exception("duplicate key")), PermanentFailure("SMS gateway refused the message (400)"),
])
def test_failures_that_do_not(exc):
    assert not is_transient(exc)


def test_what_a_failure_was_raised_from_counts_unless_the_handler_said_otherwise():
    assert is_transient(_raised_from(ConnectionRefusedError(), RuntimeError("lookup failed")))
    suppressed = _raised_from(ConnectionRefusedError(), ValueError("bad"))
    suppressed.__suppress_context__ = True
    assert not is_transient(suppressed)


def test_back_off_doubles_up_to_its_ceiling():
    assert [retry_delay(n, 0.5, 4.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
