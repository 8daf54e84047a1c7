"""Intake's in-memory catalogue copy: one worker reloads a stale copy, the others keep serving."""
import time

import eventlet

from services.intake.dependencies import CatalogueCache


class _Entry:
    def __init__(self, code):
        self.code = code
        self.definition = {"code": code}


def _cache(reload_seconds):
    cache = CatalogueCache.__new__(CatalogueCache)
    cache.ttl = 2.0
    cache.entries = {"svc": _Entry("svc")}
    cache.loaded_at = time.monotonic() - 10  # stale
    cache._reloading = False
    calls = []

    def reload():
        calls.append(1)
        cache._reloading = True
        try:
            eventlet.sleep(reload_seconds)  # the database round trips yield to other workers
        finally:
            cache._reloading = False
        cache.loaded_at = time.monotonic()

    cache.reload = reload
    return cache, calls


def test_busy_workers_reload_a_stale_copy_once_and_meanwhile_read_the_old_one():
    cache, calls = _cache(0.05)
    pool = eventlet.GreenPool(10)
    results = list(pool.imap(lambda _: cache.get("svc"), range(10)))
    assert results == [{"code": "svc"}] * 10
    assert len(calls) == 1


def test_an_invalidated_or_empty_copy_is_always_reloaded_by_its_reader():
    cache, calls = _cache(0.0)
    cache.ttl = 3600.0  # longer than the machine may have been up: invalidation must still reload
    cache._reloading = True  # someone else is reloading, but the copy was invalidated
    cache.invalidate()
    cache.get("svc")
    assert len(calls) == 1
    cache.ttl, cache.entries, cache.loaded_at, cache._reloading = 2.0, {}, time.monotonic() - 10, True
    cache.has_entries()
    assert len(calls) == 2
