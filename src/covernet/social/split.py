"""Splitting an envelope (pure): equal shares, or random ones like lucky money.

Every share gets at least ``floor`` and at most ``cap``; the shares add up exactly to the
total.  :func:`allocate` then divides a second total (the cover) in the same proportions,
by largest remainder, so it adds up exactly too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def equal(total: int, n: int) -> list[int]:
    """``total`` in ``n`` shares differing by at most 1 (the larger ones first)."""
    if n < 1 or total < 0:
        raise ValueError("need at least one share and a non-negative total")
    base, extra = divmod(total, n)
    return [base + 1 if i < extra else base for i in range(n)]


def random_split(
    total: int, n: int, *, floor: int, cap: int, rng: random.Random | None = None
) -> list[int]:
    """``n`` random shares in [floor, cap] adding up to ``total`` ("double the mean")."""
    if n < 1 or floor < 0 or cap < floor or not n * floor <= total <= n * cap:
        raise ValueError(f"cannot split {total} into {n} shares of {floor} to {cap}")
    rng = rng or random.SystemRandom()
    room = cap - floor
    rest = total - n * floor
    extra = []
    for i in range(n - 1):
        left = n - i  # shares still to fill, this one included
        low = max(0, rest - (left - 1) * room)  # what the others cannot take
        high = max(low, min(room, 2 * rest // left))
        x = rng.randint(low, high)
        extra.append(x)
        rest -= x
    extra.append(rest)
    rng.shuffle(extra)
    return [floor + x for x in extra]


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` in proportion to ``weights`` (largest remainder): adds up exactly."""
    whole = sum(weights)
    if not weights or whole <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    parts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts
