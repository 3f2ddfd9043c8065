"""Argon2id password hashing: what the suite's cheap parameters (tests/conftest.py) keep true."""

from __future__ import annotations

from argon2 import PasswordHasher, Type, extract_parameters

from livebase.services.passwords import hash_password, verify_password
from tests.conftest import CHEAP_HASHER


async def test_the_suite_hashes_with_cheap_argon2id_parameters() -> None:
    parameters = extract_parameters(await hash_password("password-123"))
    assert parameters.type is Type.ID
    cheap = (CHEAP_HASHER.time_cost, CHEAP_HASHER.memory_cost, CHEAP_HASHER.parallelism)
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == cheap


async def test_hashes_made_with_the_production_parameters_still_verify() -> None:
    # Each hash names its own parameters: a database of real hashes works with any hasher.
    stored = PasswordHasher().hash("password-123")
    assert await verify_password(stored, "password-123") is True
    assert await verify_password(stored, "password-124") is False


async def test_unknown_users_and_broken_hashes_never_verify() -> None:
    assert await verify_password(None, "livebase-timing-equaliser") is False
    assert await verify_password("not a hash", "password-123") is False
    assert await verify_password(await hash_password("a"), "a") is True
