"""The e-policy (R16): one policy as an A4 PDF in Simplified Chinese.

:func:`facts_of` gathers what the document says (the application's names are
decrypted, ID numbers masked); :func:`render` lays it out and has no database access.
The Chinese text is set in a CJK font that is embedded as a subset, so the document
reads the same in any viewer.  :func:`find_font` picks the font: ``COVERNET_PDF_FONT``
if set, else the first of :data:`FONT_CANDIDATES` on the machine (Debian's
``fonts-wqy-microhei``, TrueType and quick to subset, is preferred; Noto Sans CJK, whose
CFF outlines fpdf2 embeds too, is about twice as slow).  Without one, the document route
answers 503 ``pdf_font_missing`` rather than a PDF with empty boxes.

The same policy renders byte-identical documents: the creation date is its issue time
and nothing else varies.  Status is not printed: it changes after issue, and the
verification page (``/verify/{code}``) shows it as of today.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont
from fpdf import FPDF
from fpdf.enums import TableBordersLayout, TextMode, WrapMode, XPos, YPos
from fpdf.fonts import FontFace
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.spec import Insurer, Product
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.crypto import get_cipher
from covernet.core.errors import CovernetError
from covernet.core.masking import mask_id_number
from covernet.core.money import format_fen
from covernet.policies.applications import BENEFICIARY_CONTEXT, ID_CONTEXT, NAME_CONTEXT
from covernet.policies.models import Application, Policy

log = logging.getLogger("covernet.epolicy")
# fpdf2 names the characters a font lacks in its warnings; those may be parts of names.
logging.getLogger("fpdf").setLevel(logging.ERROR)

FONT_SETTING = "COVERNET_PDF_FONT"
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
_PROBE = "电子保险单责任免除"  # a font that lacks these cannot set the document

RELATIONSHIPS = {
    "self": "本人",
    "spouse": "配偶",
    "child": "子女",
    "parent": "父母",
    "sibling": "兄弟姐妹",
}
FREQUENCY_UNIT = {"monthly": "/月", "annual": "/年", "single": "（一次交清）", "per_order": "/单"}

# Layout (millimetres, points, RGB).
MARGIN = 16.0
BODY_PT = 9.5
SMALL_PT = 8.0
LINE = 5.0
BRAND = (13, 79, 139)
SOFT = (232, 240, 248)
RULE = (180, 192, 206)
MUTED = (90, 100, 112)
WARN_BG = (255, 246, 230)
WARN_BORDER = (214, 120, 0)
WARN_TEXT = (120, 55, 0)


class FontMissing(CovernetError):
    code = "pdf_font_missing"
    status = 503


@dataclass(frozen=True)
class PdfFont:
    path: Path
    face: int  # index in a .ttc/.otc collection, 0 otherwise


@lru_cache(maxsize=8)
def _face_of(path: str, _mtime_ns: int) -> int | None:
    """The face to use: Simplified Chinese in a collection; None if it lacks CJK."""
    try:
        if path.lower().endswith((".ttc", ".otc")):
            faces = TTCollection(path, lazy=True).fonts
        else:
            faces = [TTFont(path, lazy=True)]
    except Exception:  # not a font fontTools can read
        return None
    usable: list[tuple[int, str]] = []
    for index, face in enumerate(faces):
        cmap = face.getBestCmap() or {}
        if all(ord(ch) in cmap for ch in _PROBE):
            usable.append((index, str(face["name"].getDebugName(1) or "")))
    if not usable:
        return None
    simplified = [i for i, name in usable if " SC" in name or "GB" in name]
    # Proportional faces before monospaced ones ("… Mono").
    proportional = [i for i, name in usable if "mono" not in name.lower()]
    return (simplified or proportional or [usable[0][0]])[0]


def _usable(path: Path) -> PdfFont | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file() or path.suffix.lower() not in FONT_SUFFIXES:
        return None
    face = _face_of(str(path), stat.st_mtime_ns)
    return PdfFont(path, face) if face is not None else None


def find_font() -> PdfFont:
    """The configured font, else the first usable candidate; :class:`FontMissing` if none."""
    configured = get_settings().pdf_font
    if configured is not None:
        found = _usable(Path(configured))
        if found is None:
            raise FontMissing(
                f"{FONT_SETTING} ({configured}) is not a readable TrueType/OpenType font "
                "with Chinese characters; the e-policy cannot be rendered",
                detail={"setting": FONT_SETTING},
            )
        return found
    for candidate in FONT_CANDIDATES:
        found = _usable(candidate)
        if found is not None:
            return found
    raise FontMissing(
        "no Chinese font is installed for the e-policy: install Debian's fonts-wqy-microhei "
        f"(scripts/bootstrap.sh does) or set {FONT_SETTING} to a .ttf/.otf/.ttc font file",
        detail={"setting": FONT_SETTING},
    )


# What the document says --------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    role: str
    name: str
    id_masked: str
    relationship: str


@dataclass(frozen=True)
class Beneficiary:
    name: str
    relationship: str
    share_percent: int


@dataclass(frozen=True)
class CoverageLine:
    name: str
    sum_insured: str
    deductible: str
    copay: str
    description: str


@dataclass(frozen=True)
class EPolicy:
    policy_no: str
    verification_code: str
    verify_url: str
    insurer_name: str
    insurer_legal_name: str
    service_phone: str
    complaint_channel: str
    product_name: str
    product_version: int
    plan_name: str
    term_label: str
    payment_label: str
    premium: str
    sum_insured: str
    people: tuple[Person, ...]
    beneficiaries: tuple[Beneficiary, ...] | None  # None: the statutory heirs (法定)
    coverages: tuple[CoverageLine, ...]
    effective_date: date
    end_date: date | None
    waiting_period_end: date | None
    cooling_off_end: date | None
    cooling_off_fee: str
    renewal_guaranteed: bool
    renewal_note: str
    terms_summary: str
    exclusions: tuple[str, ...]
    claims_procedure: str
    surrender_conditions: str
    issued_at: datetime  # aware UTC


def verify_url(code: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/verify/{code}"


def _zh(text: object) -> str:
    value = getattr(text, "zh", None)
    return str(value if value is not None else text or "")


def _premium(product: Product, policy: Policy) -> tuple[str, str]:
    payment = next(p for p in product.payment_options if p.code == policy.payment_code)
    label = _zh(payment.label) + (f"，交费期{payment.years}年" if payment.years else "")
    unit = FREQUENCY_UNIT.get(payment.frequency.value, "")
    return f"{format_fen(policy.premium_fen)}{unit}", label


def _parties(
    db: Session, policy: Policy
) -> tuple[tuple[Person, ...], tuple[Beneficiary, ...] | None]:
    """The applicant and insured (ID numbers masked) and the named beneficiaries (None:
    法定).  A partner's embedded micro-policy has no application here: no parties."""
    app = db.get(Application, policy.application_id) if policy.application_id else None
    if app is None:
        return (), None
    cipher = get_cipher()
    applicant_name = cipher.decrypt(app.applicant_name_enc, context=NAME_CONTEXT)
    applicant_id = cipher.decrypt(app.applicant_id_enc, context=ID_CONTEXT)
    insured_name = cipher.decrypt(app.insured_name_enc, context=NAME_CONTEXT)
    insured_id = cipher.decrypt(app.insured_id_enc, context=ID_CONTEXT)
    relationship = RELATIONSHIPS.get(app.relationship, app.relationship)
    people = (
        Person("投保人", applicant_name, mask_id_number(applicant_id), "—"),
        Person("被保险人", insured_name, mask_id_number(insured_id), relationship),
    )
    if app.beneficiaries_enc is None:
        return people, None
    listed = json.loads(cipher.decrypt(app.beneficiaries_enc, context=BENEFICIARY_CONTEXT))
    return people, tuple(
        Beneficiary(
            b["name"],
            RELATIONSHIPS.get(b["relationship"], b["relationship"]),
            int(b["share_percent"]),
        )
        for b in listed
    )


def facts_of(db: Session, policy: Policy) -> EPolicy:
    """Everything the document shows; personal data decrypted here, ID numbers masked."""
    product, version = catalog.product_at_version(db, policy.product_version_id)
    insurer: Insurer = catalog.snapshot(db).insurers[policy.insurer_code]
    people, beneficiaries = _parties(db, policy)
    plan = next(p for p in product.plans if p.code == policy.plan_code)
    term = next(t for t in product.terms_options if t.code == policy.term_code)
    premium, payment_label = _premium(product, policy)
    return EPolicy(
        policy_no=policy.policy_no,
        verification_code=policy.verification_code,
        verify_url=verify_url(policy.verification_code),
        insurer_name=_zh(insurer.name),
        insurer_legal_name=_zh(insurer.legal_name),
        service_phone=insurer.service_phone,
        complaint_channel=_zh(insurer.complaint_channel),
        product_name=_zh(product.name),
        product_version=version,
        plan_name=_zh(plan.name),
        term_label=_zh(term.label),
        payment_label=payment_label,
        premium=premium,
        sum_insured=format_fen(policy.sum_insured_fen),
        people=people,
        beneficiaries=beneficiaries,
        coverages=tuple(
            CoverageLine(
                name=_zh(c.name),
                sum_insured=format_fen(c.sum_insured_fen),
                deductible=format_fen(c.deductible_fen) if c.deductible_fen else "无",
                copay=f"{c.copay_percent}%" if c.copay_percent else "无",
                description=_zh(c.description) if c.description else "",
            )
            for c in plan.coverages
        ),
        effective_date=policy.effective_date,
        end_date=policy.end_date,
        waiting_period_end=policy.waiting_period_end,
        cooling_off_end=policy.cooling_off_end,
        cooling_off_fee=format_fen(product.cooling_off_fee_fen),
        renewal_guaranteed=product.renewal.guaranteed,
        renewal_note=_zh(product.renewal.note),
        terms_summary=_zh(product.terms.summary),
        exclusions=tuple(_zh(e) for e in product.terms.exclusions),
        claims_procedure=_zh(product.terms.claims_procedure),
        surrender_conditions=_zh(product.surrender.conditions),
        issued_at=clock.as_utc(policy.issued_at),
    )


# Layout ------------------------------------------------------------------------------


def _day(value: date | None, *, end: bool = False) -> str:
    if value is None:
        return "终身" if end else "—"
    return f"{value.year}年{value.month:02d}月{value.day:02d}日" + (" 24时" if end else " 0时")


# Chinese line breaking: any character may end a line, except that closing punctuation
# never starts one, opening brackets never end one, and runs of Latin letters, digits
# and URL characters stay whole (when they fit on a line).
NO_LINE_START = frozenset("，。、；：？！）》」』】〕”’%‰…—·,.;:?!)]}")
NO_LINE_END = frozenset("（《「『【〔“‘([{")
_UNBREAKABLE = re.compile(r"[A-Za-z0-9@#&*+\-_./:=?%,¥$]+")


def break_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` as lines no wider than ``width`` (as ``measure`` measures), keeping its
    own line breaks."""
    out: list[str] = []
    for paragraph in text.splitlines() or [""]:
        out.extend(_break(paragraph, width, measure))
    return out


def _break(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    words = {m.start(): m.end() for m in _UNBREAKABLE.finditer(text)}
    inside = {i: start for start, end in words.items() for i in range(start + 1, end)}
    lines: list[str] = []
    start = 0
    while start < len(text):
        used, end = 0.0, start
        while end < len(text) and used + measure(text[end]) <= width:
            used += measure(text[end])
            end += 1
        if end >= len(text):
            lines.append(text[start:])
            break
        cut = max(end, start + 1)
        if cut in inside and inside[cut] > start:
            cut = inside[cut]  # do not split a word, a number or a URL that fits
        while cut - 1 > start and (text[cut] in NO_LINE_START or text[cut - 1] in NO_LINE_END):
            cut -= 1
        lines.append(text[start:cut].rstrip(" "))
        start = cut
        while start < len(text) and text[start] == " ":
            start += 1
    return lines or [""]


class _Document(FPDF):
    def __init__(self, facts: EPolicy, font: PdfFont) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.facts = facts
        self.add_font("cjk", "", str(font.path), collection_font_number=font.face)
        self.set_margins(MARGIN, MARGIN + 4, MARGIN)
        self.set_auto_page_break(True, margin=MARGIN + 6)
        self.set_text_shaping(False)
        self.alias_nb_pages()
        self.set_font("cjk", size=BODY_PT)

    @contextmanager
    def bold(self, color: tuple[int, int, int] | None = None) -> Iterator[None]:
        """Bold as the glyphs filled and stroked: one face is embedded once (and quickly).
        A local context (``q … Q``), so the stroke mode ends with the block."""
        with self.local_context(
            text_mode=TextMode.FILL_STROKE, line_width=0.18, draw_color=color or (0, 0, 0)
        ):
            yield

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font("cjk", size=SMALL_PT)
        self.set_text_color(*MUTED)
        self.set_xy(MARGIN, 8)
        self.cell(0, 5, f"{self.facts.insurer_legal_name} · 电子保险单", align="L")
        self.set_xy(MARGIN, 8)
        self.cell(0, 5, f"保险单号 {self.facts.policy_no}", align="R")
        self.set_draw_color(*RULE)
        self.line(MARGIN, 13.5, self.w - MARGIN, 13.5)
        self.set_draw_color(0, 0, 0)
        self.set_text_color(0, 0, 0)
        self.set_xy(MARGIN, MARGIN + 4)
        self.set_font("cjk", size=BODY_PT)

    def footer(self) -> None:
        self.set_y(-MARGIN)
        self.set_font("cjk", size=SMALL_PT)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"验真：{self.facts.verify_url}", align="L")
        self.set_x(MARGIN)
        self.cell(0, 5, f"第 {self.page_no()} 页 / 共 {{nb}} 页", align="R")
        self.set_text_color(0, 0, 0)

    # building blocks

    def wrap(self, text: str, width: float) -> str:
        """``text`` broken for ``width`` at the current font (see :func:`break_lines`)."""
        return "\n".join(break_lines(text, width - 0.4, self.get_string_width))

    def heading(self, text: str, english: str, *, keep: float = LINE * 4) -> None:
        """A section title, kept on one page with at least ``keep`` mm of what follows."""
        if self.will_page_break(keep + 11):
            self.add_page()
        self.ln(3)
        y = self.get_y()
        self.set_fill_color(*BRAND)
        self.rect(MARGIN, y + 0.8, 1.2, 5.4, style="F")
        self.set_x(MARGIN + 3)
        self.set_font("cjk", size=11.5)
        self.set_text_color(*BRAND)
        with self.bold(BRAND):
            self.cell(self.get_string_width(text) + 2, 7, text)
        self.set_font("cjk", size=SMALL_PT)
        self.set_text_color(*MUTED)
        self.cell(0, 7, english, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.set_font("cjk", size=BODY_PT)
        self.ln(1)

    def paragraph(self, text: str, *, size: float = BODY_PT, indent: float = 0) -> None:
        self.set_font("cjk", size=size)
        self.set_x(MARGIN + indent)
        self.multi_cell(
            0,
            LINE,
            self.wrap(text, self.epw - indent - 2 * self.c_margin),
            align="L",
            wrapmode=WrapMode.CHAR,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.set_font("cjk", size=BODY_PT)

    def pairs(self, rows: Sequence[tuple[str, str]], *, columns: int = 2) -> None:
        """Label/value pairs, ``columns`` pairs a row, in a light grid."""
        label_w = 24.0
        value_w = (self.epw - columns * label_w) / columns
        widths = tuple([label_w, value_w] * columns)
        self.set_fill_color(255, 255, 255)  # tables fill cells with the current colour
        with self.table(
            col_widths=widths,
            width=self.epw,
            first_row_as_headings=False,
            line_height=LINE,
            padding=(1.2, 1.8),
            wrapmode=WrapMode.CHAR,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            text_align="LEFT",
        ) as table:
            self.set_draw_color(*RULE)
            labelled = FontFace(color=MUTED, fill_color=SOFT)
            for start in range(0, len(rows), columns):
                row = table.row()
                chunk = list(rows[start : start + columns])
                for index, (label, value) in enumerate(chunk):
                    last = index == len(chunk) - 1
                    row.cell(label, style=labelled)
                    span = (columns - len(chunk)) * 2 + 1 if last else 1
                    value_span = value_w + (span - 1) * (label_w + value_w) / 2
                    row.cell(self.wrap(value, value_span - 3.6), colspan=span)
        self.set_draw_color(0, 0, 0)

    def grid(
        self, head: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]
    ) -> None:
        self.set_fill_color(255, 255, 255)
        with self.table(
            col_widths=tuple(widths),
            width=self.epw,
            line_height=LINE,
            padding=(1.2, 1.8),
            wrapmode=WrapMode.CHAR,
            headings_style=FontFace(color=BRAND, fill_color=SOFT),
            text_align="LEFT",
        ) as table:
            self.set_draw_color(*RULE)
            heading = table.row()
            for text in head:
                heading.cell(text)
            for values in rows:
                row = table.row()
                for text, column in zip(values, widths, strict=True):
                    row.cell(self.wrap(text, column - 3.6))
        self.set_draw_color(0, 0, 0)

    def boxed(self, title: str, lines: Sequence[str]) -> None:
        """A highlighted box (exclusions, R5): tinted, framed, bold text.  Long lists run
        over page breaks; each page's part gets its own box, drawn before its text."""
        pad, width = 3.0, self.epw - 7.0
        texts = [title, *lines]
        heights = [self._height(t, width, 10.5 if i == 0 else BODY_PT) for i, t in enumerate(texts)]
        heights[0] += 1.5
        index = 0
        while index < len(texts):
            top = self.get_y()
            room = self.page_break_trigger - top - 2 * pad
            end = index
            used = 0.0
            while end < len(texts) and (used + heights[end] <= room or end == index):
                used += heights[end]
                end += 1
            # The title goes with at least one entry; an entry that does not fit here
            # starts the next page.
            alone = index == 0 and end < min(2, len(texts))
            if (alone or used > room) and top > self.t_margin + 1:
                self.add_page()
                continue
            self.set_fill_color(*WARN_BG)
            self.set_draw_color(*WARN_BORDER)
            self.set_line_width(0.5)
            self.rect(MARGIN, top, self.epw, used + 2 * pad, style="DF")
            self.set_fill_color(*WARN_BORDER)
            self.rect(MARGIN, top, 1.6, used + 2 * pad, style="F")
            self.set_line_width(0.2)
            self.set_y(top + pad)
            self.set_text_color(*WARN_TEXT)
            for position in range(index, end):
                self.set_x(MARGIN + 4.5)
                self.set_font("cjk", size=10.5 if position == 0 else BODY_PT)
                with self.bold(WARN_TEXT):
                    self.multi_cell(
                        width,
                        LINE + 0.4,
                        self.wrap(texts[position], width - 2 * self.c_margin),
                        align="L",
                        wrapmode=WrapMode.CHAR,
                        new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT,
                    )
                if position == 0:
                    self.ln(1.5)
            self.set_text_color(0, 0, 0)
            self.set_draw_color(0, 0, 0)
            self.set_font("cjk", size=BODY_PT)
            self.set_y(top + used + 2 * pad + 1)
            index = end
            if index < len(texts):
                self.add_page()

    def _height(self, text: str, width: float, size: float) -> float:
        self.set_font("cjk", size=size)
        lines = self.wrap(text, width - 2 * self.c_margin).count("\n") + 1
        self.set_font("cjk", size=BODY_PT)
        return lines * (LINE + 0.4)


def _title_block(pdf: _Document, facts: EPolicy) -> None:
    pdf.set_fill_color(*BRAND)
    pdf.rect(0, 0, pdf.w, 4, style="F")
    pdf.set_y(12)
    pdf.set_font("cjk", size=10)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 6, facts.insurer_legal_name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*BRAND)
    pdf.set_font("cjk", size=22)
    with pdf.bold(BRAND):
        pdf.cell(pdf.get_string_width("电子保险单") + 3, 12, "电子保险单")
    pdf.set_font("cjk", size=10)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 13, "Electronic Insurance Policy", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    # The numbers that identify this document, top right.
    pdf.set_text_color(0, 0, 0)
    box_w, box_x, box_y = 70.0, pdf.w - MARGIN - 70.0, 12.0
    pdf.set_draw_color(*RULE)
    pdf.set_fill_color(*SOFT)
    pdf.rect(box_x, box_y, box_w, 19, style="DF")
    for index, (label, value) in enumerate(
        (("保险单号", facts.policy_no), ("验真码", facts.verification_code))
    ):
        pdf.set_xy(box_x + 2.5, box_y + 2 + index * 7.5)
        pdf.set_font("cjk", size=SMALL_PT)
        pdf.set_text_color(*MUTED)
        pdf.cell(16, 6, label)
        pdf.set_font("cjk", size=11)
        pdf.set_text_color(0, 0, 0)
        with pdf.bold():
            pdf.cell(box_w - 20, 6, value)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_y(box_y + 22)
    pdf.set_font("cjk", size=SMALL_PT)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        0,
        4.2,
        f"本保险单为电子保险单，与纸质保险单具有同等法律效力。可在 {facts.verify_url} "
        "查验真伪及保单当前状态（以查验结果为准）。",
        align="L",
        wrapmode=WrapMode.CHAR,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("cjk", size=BODY_PT)


def _period(facts: EPolicy) -> list[tuple[str, str]]:
    waiting = (
        f"至{_day(facts.waiting_period_end, end=True)}（等待期内发生的疾病相关事故不承担保险责任）"
        if facts.waiting_period_end
        else "无等待期"
    )
    if facts.cooling_off_end:
        cooling = (
            f"至{_day(facts.cooling_off_end, end=True)}；犹豫期内可申请解除合同，"
            f"退还全部保险费，扣除手续费{facts.cooling_off_fee}"
        )
    else:
        cooling = "本产品无犹豫期"
    return [
        ("生效日期", _day(facts.effective_date)),
        ("终止日期", _day(facts.end_date, end=True)),
        ("等待期", waiting),
        ("犹豫期", cooling),
    ]


def render(facts: EPolicy, font: PdfFont | None = None) -> bytes:
    """The e-policy PDF; the same facts and font give the same bytes."""
    font = font or find_font()
    pdf = _Document(facts, font)
    pdf.set_title(f"电子保险单 {facts.policy_no}")
    pdf.set_subject(facts.product_name)
    pdf.set_author(facts.insurer_legal_name)
    pdf.set_creator("Covernet")
    pdf.set_lang("zh-CN")
    pdf.set_creation_date(facts.issued_at)
    pdf.add_page()
    _title_block(pdf, facts)

    pdf.heading("保险合同信息", "Policy")
    pdf.pairs(
        [
            ("保险公司", facts.insurer_legal_name),
            ("签发时间", clock.to_local(facts.issued_at).strftime("%Y-%m-%d %H:%M:%S（北京时间）")),
            ("产品名称", f"{facts.product_name}（产品版本 {facts.product_version}）"),
            ("保障计划", facts.plan_name),
            ("保险期间", facts.term_label),
            ("基本保险金额", facts.sum_insured),
            ("保险费", facts.premium),
            ("交费方式", facts.payment_label),
        ]
    )
    pdf.heading("保险期间与重要期限", "Dates")
    pdf.pairs(_period(facts), columns=1)

    pdf.heading("投保人与被保险人", "Policyholder and insured")
    if not facts.people:
        pdf.paragraph("本保单为合作场景中投保的保险，投保人、被保险人信息以投保时的场景记录为准。")
    else:
        pdf.grid(
            ["身份", "姓名", "证件号码（居民身份证）", "与投保人关系"],
            [[p.role, p.name, p.id_masked, p.relationship] for p in facts.people],
            (30, 42, 70, pdf.epw - 142),
        )
        pdf.ln(2)
        if facts.beneficiaries is None:
            pdf.pairs([("身故受益人", "法定（被保险人的法定继承人）")], columns=1)
        else:
            pdf.grid(
                ["身故受益人", "与被保险人关系", "受益份额"],
                [[b.name, b.relationship, f"{b.share_percent}%"] for b in facts.beneficiaries],
                (72, 70, pdf.epw - 142),
            )

    pdf.heading("保障内容", "Coverage")
    pdf.grid(
        ["保障项目", "保险金额", "免赔额", "自付比例"],
        [[c.name, c.sum_insured, c.deductible, c.copay] for c in facts.coverages],
        (pdf.epw - 112, 42, 40, 30),
    )
    described = [c for c in facts.coverages if c.description]
    if described:
        pdf.ln(1.5)
        for c in described:
            pdf.paragraph(f"{c.name}：{c.description}", size=SMALL_PT + 0.5)
            pdf.ln(0.8)
    pdf.ln(1)
    pdf.paragraph(f"条款摘要：{facts.terms_summary}", size=SMALL_PT + 0.5)

    pdf.heading("责任免除", "Exclusions", keep=30)
    pdf.boxed(
        "责任免除（请重点阅读）：因下列情形之一导致保险事故的，本公司不承担保险责任",
        [f"{i}. {text}" for i, text in enumerate(facts.exclusions, start=1)],
    )

    pdf.heading("续保", "Renewal")
    if not facts.renewal_guaranteed:
        with pdf.bold(WARN_TEXT):
            pdf.set_text_color(*WARN_TEXT)
            pdf.paragraph("不保证续保")
            pdf.set_text_color(0, 0, 0)
    pdf.paragraph(facts.renewal_note)

    pdf.heading("理赔流程", "Claims")
    pdf.paragraph(facts.claims_procedure)
    pdf.heading("退保（解除合同）", "Cancellation")
    pdf.paragraph(facts.surrender_conditions)

    pdf.heading("客户服务", "Service")
    pdf.pairs([("客服电话", facts.service_phone), ("投诉渠道", facts.complaint_channel)], columns=1)
    pdf.ln(4)
    pdf.set_text_color(*MUTED)
    pdf.paragraph(
        f"{facts.insurer_legal_name}　签发于 "
        f"{clock.to_local(facts.issued_at):%Y年%m月%d日 %H:%M}（北京时间）。"
        "本电子保险单由 Covernet 平台根据保险公司承保结果生成；证件号码已部分隐藏。",
        size=SMALL_PT,
    )
    pdf.set_text_color(0, 0, 0)
    missing = sum(len(f.missing_glyphs) for f in pdf.fonts.values() if hasattr(f, "missing_glyphs"))
    if missing:
        log.warning("e-policy font %s lacks %d of the characters used", font.path.name, missing)
    return bytes(pdf.output())


# Rendering costs a few hundred milliseconds (mostly loading the font), and a policy's
# document never changes once issued, so recent ones are kept, keyed by the policy and
# the font; the caller has checked access before asking.
_RENDERED: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
_RENDERED_MAX = 128
_rendered_lock = threading.Lock()


def document(db: Session, policy: Policy) -> bytes:
    """The policy's e-policy PDF (the font is looked up first: no font, no facts read)."""
    font = find_font()
    key = (policy.id, str(font.path), font.face)
    with _rendered_lock:
        found = _RENDERED.get(key)
        if found is not None:
            _RENDERED.move_to_end(key)
            return found
    pdf = render(facts_of(db, policy), font)
    with _rendered_lock:
        _RENDERED[key] = pdf
        while len(_RENDERED) > _RENDERED_MAX:
            _RENDERED.popitem(last=False)
    return pdf
