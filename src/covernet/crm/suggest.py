"""Suggested next products: item-to-item co-occurrence of product lines (pure).

For each line the customer does not hold, the share of holders of one of the customer's
lines who also hold it (``P(b | a)``, the best ``a`` is the reason shown: "持有车险的客户
中 42% 也持有家财险"). Lines the customer holds, or is not eligible for, are never
suggested. Ordered by that share, then by how many customers back it, then by line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Suggestion:
    line: str  # the line suggested
    because: str  # the customer's line whose holders also hold it
    both: int  # customers who hold both
    holders: int  # customers who hold ``because``

    @property
    def percent(self) -> int:
        """The share in whole per cent, rounded half up (never 0 for a real pair)."""
        return max(1, (200 * self.both + self.holders) // (2 * self.holders))


@dataclass(frozen=True)
class Counts:
    """How many customers hold each line and each ordered pair of lines."""

    lines: Counter[str]
    pairs: Counter[tuple[str, str]]


def count(holdings: Iterable[Iterable[str]]) -> Counts:
    lines: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for held in holdings:
        distinct = sorted(set(held))
        lines.update(distinct)
        pairs.update((a, b) for a in distinct for b in distinct if a != b)
    return Counts(lines, pairs)


def suggest(
    held: Iterable[str],
    counts: Counts,
    *,
    eligible: Iterable[str] | None = None,
    min_both: int = 1,
    limit: int = 3,
) -> list[Suggestion]:
    """The best ``limit`` lines to suggest to a customer holding ``held`` (``counts``
    should not include that customer). ``eligible`` None means every line."""
    mine = set(held)
    allowed = None if eligible is None else set(eligible)
    best: dict[str, Suggestion] = {}
    for (a, b), both in counts.pairs.items():
        if a not in mine or b in mine or both < min_both:
            continue
        if allowed is not None and b not in allowed:
            continue
        candidate = Suggestion(line=b, because=a, both=both, holders=counts.lines[a])
        current = best.get(b)
        if current is None or _key(candidate) < _key(current):
            best[b] = candidate
    return sorted(best.values(), key=_key)[:limit]


def _key(s: Suggestion) -> tuple[Fraction, int, str, str]:
    """Highest share first (exact fractions), then most customers behind it, then names."""
    return (-Fraction(s.both, s.holders), -s.both, s.line, s.because)
