"""Parsing and checking live-session transcripts (pure: no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covernet.compliance.checker import CheckResult, Finding
from covernet.compliance.transcript import foreign_links, parse, review, stamp
from covernet.core.errors import ValidationFailed


def test_plain_lines_in_several_stamp_styles() -> None:
    lines = parse("[00:00:05] 大家好\n\n01:30 今天介绍意外险\n【1:02:03】再见\n1:02:04 - 补充\n")
    assert [(x.number, x.offset, x.text) for x in lines] == [
        (1, 5, "大家好"),
        (3, 90, "今天介绍意外险"),
        (4, 3723, "再见"),
        (5, 3724, "补充"),
    ]


def test_times_must_not_go_backwards() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse("[00:10:00] 先\n[00:09:59] 后")
    assert err.value.code == "invalid_transcript" and err.value.detail == {
        "field": "transcript",
        "line": 2,
    }


def test_a_line_without_a_time_is_named() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse("[00:00:01] 好\n这一行没有时间")
    assert "line 2" in err.value.message and err.value.detail["line"] == 2  # type: ignore[index]


def test_impossible_minutes_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="line 1"):
        parse("[00:61:00] 不对")


def test_empty_and_oversized_transcripts() -> None:
    with pytest.raises(ValidationFailed, match="no timestamped lines"):
        parse("\n\n[00:00:01]   \n")
    with pytest.raises(ValidationFailed) as err:
        parse("[00:00:01] x" * 20_000)
    assert err.value.code == "transcript_too_large"


def test_subrip_cues() -> None:
    srt = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:04,000\r\n欢迎来到直播间\r\n第二行\r\n\r\n"
        "2\r\n00:02:10,500 --> 00:02:12,000\r\n全网最便宜\r\n"
    )
    lines = parse(srt)
    assert [(x.number, x.offset, x.text) for x in lines] == [
        (3, 1, "欢迎来到直播间 第二行"),
        (8, 130, "全网最便宜"),
    ]


def test_broken_subrip_names_the_line() -> None:
    with pytest.raises(ValidationFailed, match="line 5"):
        parse("1\n00:00:01,000 --> 00:00:02,000\n好\n\n不是时间\n")


@given(st.integers(min_value=0, max_value=99 * 3600 + 3599))
def test_stamp_round_trips(seconds: int) -> None:
    assert parse(f"[{stamp(seconds)}] 好")[0].offset == seconds


def test_foreign_links() -> None:
    text = (
        "详情见 https://covernet.example/products/a 或 www.taobao.com/shop 或 abc.cn 或 /products/b"
    )
    spans = foreign_links(text, {"covernet.example"})
    assert [text[s:e] for s, e in spans] == ["www.taobao.com/shop", "abc.cn"]


def _fake_check(text: str) -> CheckResult:
    findings = []
    if "最" in text:
        start = text.index("最")
        findings.append(
            Finding(
                rule_id="R23.superlative",
                rule="R23",
                severity="fail",
                span=(start, start + 1),
                excerpt="最",
                citation="c",
                suggestion="s",
            )
        )
    return CheckResult(verdict="fail" if findings else "pass", findings=findings)


def test_review_keeps_each_findings_time() -> None:
    lines = parse("[00:00:01] 你好\n[00:03:07] 这是最好的\n[00:04:00] 去 x.com 下单")
    verdict, found = review(lines, _fake_check, {"own.example"})
    assert verdict == "fail"
    assert [(f.offset, f.line, f.finding.rule_id) for f in found] == [
        (187, 2, "R23.superlative"),
        (240, 3, "R4.external_link"),
    ]
    assert found[1].as_dict()["at"] == "00:04:00" and found[1].as_dict()["excerpt"] == "x.com"


def test_clean_transcript_passes() -> None:
    verdict, found = review(parse("[00:00:01] 你好"), _fake_check, {"own.example"})
    assert (verdict, found) == ("pass", [])
