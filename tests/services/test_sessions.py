"""The session cache: what it keeps, what it forgets, and reads that raced a change."""

from __future__ import annotations

from livebase.services.sessions import MAX_AGE, SessionCache


def test_keeps_valid_sessions_and_forgets_them_on_demand() -> None:
    cache = SessionCache()
    cache.put("s1", "u1", "user", cache.generation)
    cache.put("s2", "u2", "administrator", cache.generation)
    assert cache.get("s1") is not None and cache.get("s1").role == "user"  # type: ignore[union-attr]
    cache.forget_session("s1")
    assert cache.get("s1") is None
    assert cache.get("s2") is not None
    cache.forget_all()
    assert cache.get("s2") is None


def test_a_read_that_started_before_a_change_is_not_kept() -> None:
    cache = SessionCache()
    before = cache.generation  # authenticate takes this, then queries the database
    cache.forget_session("other")  # meanwhile a logout or a user change lands
    cache.put("s1", "u1", "user", before)
    assert cache.get("s1") is None
    cache.put("s1", "u1", "user", cache.generation)
    assert cache.get("s1") is not None


def test_entries_expire() -> None:
    now = [1000.0]
    cache = SessionCache(clock=lambda: now[0])
    cache.put("s1", "u1", "user", cache.generation)
    now[0] += MAX_AGE / 2
    assert cache.get("s1") is not None
    now[0] += MAX_AGE
    assert cache.get("s1") is None
