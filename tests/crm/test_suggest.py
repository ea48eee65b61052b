"""Suggested next lines (pure): co-occurrence across customers, never a held or
ineligible line, ordered by the share of co-holders."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from covernet.crm import suggest

LINES = ("accident", "medical", "critical_illness", "life", "property", "travel")
holdings = st.lists(st.frozensets(st.sampled_from(LINES), max_size=4), max_size=40)
held_sets = st.frozensets(st.sampled_from(LINES), max_size=4)


def test_car_then_home_with_the_reason() -> None:
    others = [{"property", "accident"}] * 42 + [{"accident"}] * 58 + [{"medical", "travel"}] * 5
    found = suggest.suggest({"accident"}, suggest.count(others))
    assert [s.line for s in found] == ["property"]
    assert found[0].because == "accident" and found[0].percent == 42
    assert (found[0].both, found[0].holders) == (42, 100)


def test_ordered_by_share_then_support() -> None:
    others = (
        [{"accident", "medical"}] * 3  # 3 of 4 accident holders
        + [{"accident"}]
        + [{"life", "travel"}]  # 1 of 4 life holders
        + [{"life"}]
        + [{"life", "property"}] * 2  # 2 of 4 life holders
    )
    found = suggest.suggest({"accident", "life"}, suggest.count(others))
    assert [(s.line, s.because, s.percent) for s in found] == [
        ("medical", "accident", 75),
        ("property", "life", 50),
        ("travel", "life", 25),
    ]
    # the same share: more customers behind it first
    tied = [{"accident", "medical"}, {"accident"}] + [{"life", "property"}] * 2 + [{"life"}] * 2
    found = suggest.suggest({"accident", "life"}, suggest.count(tied))
    assert [s.line for s in found] == ["property", "medical"]
    assert suggest.suggest({"accident", "life"}, suggest.count(tied), limit=1)[0].line == "property"


def test_ineligible_lines_are_never_suggested() -> None:
    others = [{"accident", "life"}] * 10 + [{"accident", "medical"}]
    found = suggest.suggest({"accident"}, suggest.count(others), eligible={"medical"})
    assert [s.line for s in found] == ["medical"]
    assert suggest.suggest({"accident"}, suggest.count(others), eligible=set()) == []


def test_nothing_held_nothing_suggested() -> None:
    assert suggest.suggest(set(), suggest.count([{"accident", "life"}])) == []


@given(holdings, held_sets, st.frozensets(st.sampled_from(LINES)) | st.none())
def test_never_a_held_or_ineligible_line(
    others: list[frozenset[str]], held: frozenset[str], eligible: frozenset[str] | None
) -> None:
    found = suggest.suggest(held, suggest.count(others), eligible=eligible, limit=10)
    lines = [s.line for s in found]
    assert len(lines) == len(set(lines))
    for s in found:
        assert s.line not in held and s.because in held
        assert eligible is None or s.line in eligible
        # the share is what the holdings say
        both = sum(1 for h in others if s.because in h and s.line in h)
        holders = sum(1 for h in others if s.because in h)
        assert (s.both, s.holders) == (both, holders) and 1 <= s.percent <= 100
    shares = [Fraction(s.both, s.holders) for s in found]
    assert shares == sorted(shares, reverse=True)


@given(holdings, held_sets)
def test_every_co_held_line_is_found_with_its_best_reason(
    others: list[frozenset[str]], held: frozenset[str]
) -> None:
    found = {s.line: s for s in suggest.suggest(held, suggest.count(others), limit=10)}
    for line in LINES:
        if line in held:
            continue
        best = max(
            (
                Fraction(
                    sum(1 for h in others if a in h and line in h), sum(1 for h in others if a in h)
                )
                for a in held
                if any(a in h and line in h for h in others)
            ),
            default=None,
        )
        if best is None:
            assert line not in found
        else:
            assert Fraction(found[line].both, found[line].holders) == best
