"""The envelope split (pure): shares add up exactly and respect the floor and the cap."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from covernet.social import split


@given(
    n=st.integers(1, 100),
    mean=st.integers(1, 10_000),
    divisor=st.integers(1, 10),
    seed=st.integers(0, 2**32),
)
def test_random_shares_add_up_with_floors(n: int, mean: int, divisor: int, seed: int) -> None:
    total = n * mean
    floor = max(1, mean // divisor)
    cap = min(10_000, total)
    shares = split.random_split(total, n, floor=floor, cap=cap, rng=random.Random(seed))
    assert len(shares) == n and sum(shares) == total
    assert all(floor <= s <= cap for s in shares)


@given(
    total=st.integers(0, 10**9),
    weights=st.lists(st.integers(1, 10_000), min_size=1, max_size=100),
)
def test_allocate_adds_up_in_proportion(total: int, weights: list[int]) -> None:
    parts = split.allocate(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    assert all(abs(p - total * w / whole) < 1 for p, w in zip(parts, weights, strict=True))


@given(total=st.integers(0, 10**7), n=st.integers(1, 100))
def test_equal_shares(total: int, n: int) -> None:
    shares = split.equal(total, n)
    assert sum(shares) == total and max(shares) - min(shares) <= 1
