"""Live-session transcripts: parsing timestamped text and checking it line by line.

Pure functions: no database.  A transcript is uploaded after the session as plain text
with one timestamp per line (``[00:12:34] 文本``, ``00:12:34 文本``, ``12:34 文本``) or as
SubRip (``.srt``: numbered cues with ``00:12:34,500 --> 00:12:37,000``).  Each line is
checked with the marketing rules; every finding keeps the line's time offset so a
compliance officer can jump to that moment of the recording.  Links that lead anywhere
but the platform's own pages are findings too (R4: a live stream links only to the
institution's own sales pages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from covernet.compliance.checker import CheckResult, Finding
from covernet.core.errors import ValidationFailed

MAX_TRANSCRIPT_CHARS = 200_000
MAX_LINES = 5_000

_STAMP = r"(?:(\d{1,2}):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?"
_PLAIN_LINE = re.compile(rf"^\s*[\[【(（]?\s*{_STAMP}\s*[\]】)）]?\s*[-–—:：]?\s*(.*)$")
_SRT_TIMING = re.compile(rf"^\s*{_STAMP}\s*-->\s*{_STAMP}\s*$")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s，。！？、；“”\"'<>（）()]+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net|org|cc|top|vip|xyz|shop|me|io|info|link)"
    r"(?:/[^\s，。！？、；“”\"'<>（）()]*)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line of the uploaded file where the cue's text starts
    offset: int  # seconds from the start of the session
    text: str


def stamp(seconds: int) -> str:
    """``HH:MM:SS`` for a time offset."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _seconds(hours: str | None, minutes: str, secs: str) -> int:
    if int(secs) > 59 or (hours is not None and int(minutes) > 59):
        raise ValueError("minutes and seconds run from 00 to 59")
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs)


def _bad(number: int, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"line {number}: {message}",
        code="invalid_transcript",
        detail={"field": "transcript", "line": number},
    )


def parse(raw: str) -> list[Line]:
    """The transcript's lines with their offsets; refuse text that is not a transcript,
    naming the first line at fault."""
    if len(raw) > MAX_TRANSCRIPT_CHARS:
        raise ValidationFailed(
            f"the transcript is longer than {MAX_TRANSCRIPT_CHARS} characters",
            code="transcript_too_large",
            detail={"field": "transcript"},
        )
    rows = raw.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").split("\n")
    lines = _parse_srt(rows) if any(_SRT_TIMING.match(r) for r in rows[:5]) else _parse_plain(rows)
    if not lines:
        raise ValidationFailed(
            "the transcript has no timestamped lines",
            code="invalid_transcript",
            detail={"field": "transcript"},
        )
    if len(lines) > MAX_LINES:
        raise ValidationFailed(
            f"the transcript has more than {MAX_LINES} lines",
            code="transcript_too_large",
            detail={"field": "transcript"},
        )
    previous = 0
    for line in lines:
        if line.offset < previous:
            raise _bad(line.number, f"{stamp(line.offset)} is earlier than the line before")
        previous = line.offset
    return lines


def _parse_plain(rows: list[str]) -> list[Line]:
    lines: list[Line] = []
    for number, row in enumerate(rows, start=1):
        if not row.strip():
            continue
        match = _PLAIN_LINE.match(row)
        if match is None:
            raise _bad(number, "does not start with a time such as [00:12:34]")
        hours, minutes, secs, _, text = match.groups()
        try:
            offset = _seconds(hours, minutes, secs)
        except ValueError as exc:
            raise _bad(number, str(exc)) from None
        if text.strip():
            lines.append(Line(number, offset, text.strip()))
    return lines


def _parse_srt(rows: list[str]) -> list[Line]:
    lines: list[Line] = []
    number = 0
    while number < len(rows):
        row = rows[number].strip()
        number += 1
        if not row or row.isdigit():
            continue
        timing = _SRT_TIMING.match(row)
        if timing is None:
            raise _bad(number, "expected a cue time such as 00:12:34,500 --> 00:12:37,000")
        try:
            offset = _seconds(*timing.groups()[:3])
        except ValueError as exc:
            raise _bad(number, str(exc)) from None
        first, texts = number + 1, []
        while number < len(rows) and rows[number].strip():
            texts.append(rows[number].strip())
            number += 1
        if texts:
            lines.append(Line(first, offset, " ".join(texts)))
    return lines


def foreign_links(text: str, own_hosts: Collection[str]) -> list[tuple[int, int]]:
    """Spans of links in ``text`` that do not lead to one of ``own_hosts``."""
    spans = []
    for match in _URL.finditer(text):
        found = match.group(0)
        host = urlsplit(found if "://" in found else f"http://{found}").hostname or ""
        if host.lower().removeprefix("www.") not in own_hosts:
            spans.append((match.start(), match.end()))
    return spans


@dataclass(frozen=True)
class TimedFinding:
    offset: int
    line: int
    finding: Finding

    def as_dict(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "at": stamp(self.offset),
            "line": self.line,
            **self.finding.model_dump(mode="json"),
        }


LINK_RULE = {
    "rule_id": "R4.external_link",
    "rule": "R4",
    "severity": "fail",
    "citation": "保险法第131条；互联网保险业务监管办法；原银保监会关于直播营销的通知",
    "suggestion": "直播只能引导至本平台的产品页面，删除第三方链接、口令或店铺地址。",
}


def review(
    lines: list[Line],
    check_line: Callable[[str], CheckResult],
    own_hosts: Collection[str],
    whole: Collection[Finding] = (),
) -> tuple[str, list[TimedFinding]]:
    """Check every line (``whole``: findings about the transcript as a whole, such as a
    missing uncertainty statement, placed at its start); the verdict is the worst."""
    found = [TimedFinding(0, 0, f) for f in whole]
    for line in lines:
        for finding in check_line(line.text).findings:
            found.append(TimedFinding(line.offset, line.number, finding))
        for start, end in foreign_links(line.text, own_hosts):
            link = Finding(
                span=(start, end),
                excerpt=line.text[start:end],
                message="直播中出现了本平台以外的链接",
                **LINK_RULE,
            )
            found.append(TimedFinding(line.offset, line.number, link))
    severities = {f.finding.severity for f in found}
    verdict = "fail" if "fail" in severities else "review" if found else "pass"
    return verdict, found
