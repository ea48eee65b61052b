"""The e-policy PDF and its public verification (R16), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from covernet.core import clock
from covernet.core.config import reset_settings
from covernet.core.masking import mask_id_number
from covernet.identity.models import Role
from covernet.policies import epolicy
from tests.conftest import bearer, staff_headers
from tests.policies.buying import APPLICANT_ID, application, apply, pay, quote

PRODUCT_NAME = "安心月月意外险（演示）"
BENEFICIARIES = [
    {"name": "李四", "relationship": "spouse", "share_percent": 60},
    {"name": "张小五", "relationship": "child", "share_percent": 40},
]

needs_font = pytest.mark.skipif(
    not any(epolicy._usable(p) for p in epolicy.FONT_CANDIDATES),
    reason="no Chinese font installed (scripts/bootstrap.sh installs fonts-wqy-microhei)",
)


def issued(client: Any, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    q = quote(client, headers)
    made = apply(client, headers, application(client, q, **over))
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    policies = client.get("/api/v1/policies", headers=headers).json()
    assert len(policies) == 1, policies
    return dict(policies[0])


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def embedded_fonts(reader: PdfReader) -> list[tuple[str, str]]:
    """(BaseFont, font file key) of every font used on the pages."""
    found = []
    for page in reader.pages:
        fonts = page["/Resources"]["/Font"]
        for ref in fonts.values():
            font = ref.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                d = descendant.get_object()
                descriptor = d["/FontDescriptor"].get_object()
                keys = [k for k in ("/FontFile", "/FontFile2", "/FontFile3") if k in descriptor]
                found.extend((str(d["/BaseFont"]), k) for k in keys)
    return found


@needs_font
def test_the_e_policy_is_a_real_pdf(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = issued(client, customer_headers, beneficiaries=BENEFICIARIES)
    url = f"/api/v1/policies/{policy['policy_id']}/document"
    assert policy["document_url"] == url
    got = client.get(url, headers=customer_headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == (
        f'attachment; filename="{policy["policy_no"]}.pdf"'
    )
    pdf = got.content
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    fonts = embedded_fonts(reader)
    assert fonts, "no embedded font"
    assert all("+" in name for name, _ in fonts)  # subset fonts carry a tag: ABCDEF+Name
    text = flat("".join(page.extract_text() for page in reader.pages))
    for expected in (
        "电子保险单",
        policy["policy_no"],
        PRODUCT_NAME,
        mask_id_number(APPLICANT_ID),
        "责任免除",
        "不保证续保",
        "李四",
        "60%",
        "/verify/",
        "北京时间",
    ):
        assert expected in text, expected
    assert APPLICANT_ID not in text and APPLICANT_ID.encode() not in pdf
    assert re.search(r"第1页/共\d+页", text)
    # The same policy gives the same bytes.
    again = client.get(url, headers=customer_headers)
    assert again.content == pdf


@needs_font
def test_only_the_owner_and_staff_readers_get_it(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    from covernet.core.db import unit_of_work
    from covernet.identity import service

    policy = issued(client, customer_headers)
    url = f"/api/v1/policies/{policy['policy_id']}/document"
    with unit_of_work(db_url) as db:
        service.register_customer(db, mobile="13700001111", password="other-pass-1", name="另一人")
    other = bearer(client, "13700001111", "other-pass-1")
    refused = client.get(url, headers=other)
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert client.get(url).status_code == 401
    ops = staff_headers(client, db_url, "ops-reader", Role.ops)
    assert client.get(url, headers=ops).content.startswith(b"%PDF-")


def test_no_font_is_a_clear_503(
    client: Any, customer_headers: dict[str, str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = issued(client, customer_headers)
    monkeypatch.setenv("COVERNET_PDF_FONT", "/nonexistent/font.ttf")
    reset_settings()
    got = client.get(f"/api/v1/policies/{policy['policy_id']}/document", headers=customer_headers)
    assert got.status_code == 503
    assert got.json()["error"] == "pdf_font_missing"
    assert "COVERNET_PDF_FONT" in got.json()["message"]
    assert not got.content.startswith(b"%PDF")
    monkeypatch.delenv("COVERNET_PDF_FONT")
    reset_settings()
    monkeypatch.setattr(epolicy, "FONT_CANDIDATES", ())
    again = client.get(f"/api/v1/policies/{policy['policy_id']}/document", headers=customer_headers)
    assert again.status_code == 503 and again.json()["detail"] == {"setting": "COVERNET_PDF_FONT"}


def test_verification_shows_status_and_a_masked_name(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = issued(client, customer_headers)
    path = policy["verify_url"]
    code = path.rsplit("/", 1)[1]
    page = client.get(path)
    assert page.status_code == 200
    html = page.text
    assert policy["policy_no"] in html and PRODUCT_NAME in html
    assert "示例安心财产保险股份有限公司" in html
    assert "未生效" in html  # cover starts the day after payment
    assert "张*" in html and "张三" not in html
    assert APPLICANT_ID not in html and mask_id_number(APPLICANT_ID) not in html
    assert "Content-Security-Policy" in page.headers and "<script>" not in html
    assert 'style="' not in html
    english = client.get(f"{path}?lang=en").text
    assert "Not yet in force" in english and "genuine policy" in english
    with clock.shifted(timedelta(days=2)):
        assert "有效" in client.get(path, params={"lang": "zh"}).text
        facts = client.get(f"/api/v1/verify/{code.lower()}").json()
    assert facts["status"] == "in_force" and facts["status_label"]["zh"] == "有效"
    assert set(facts) == {
        "genuine",
        "policy_no",
        "product_name",
        "product_version",
        "insurer_name",
        "status",
        "status_label",
        "effective_date",
        "end_date",
        "insured_name",
        "checked_on",
    }
    assert facts["insured_name"] == "张*" and facts["policy_no"] == policy["policy_no"]
    assert APPLICANT_ID not in str(facts)
    with clock.shifted(timedelta(days=60)):
        assert client.get(f"/api/v1/verify/{code}").json()["status"] == "expired"


def test_an_unknown_code_is_not_genuine(client: Any, db_url: str) -> None:
    for code in ("ZZZZZZZZZZZZ", "not-a-code!"):
        page = client.get(f"/verify/{code}")
        assert page.status_code == 404
        assert "不是真实的保单" in page.text
        answer = client.get(f"/api/v1/verify/{code}")
        assert answer.status_code == 404 and answer.json()["error"] == "not_genuine"


@needs_font
def test_the_first_page_renders_chinese(
    client: Any, customer_headers: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian's poppler-utils) is not installed: PNG check skipped")
    if "postgresql" in db_url:
        pytest.skip("the picture does not depend on the database; checked on SQLite")
    policy = issued(client, customer_headers)
    pdf = client.get(
        f"/api/v1/policies/{policy['policy_id']}/document", headers=customer_headers
    ).content
    (tmp_path / "policy.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", "policy.pdf", "p1"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    from PIL import Image

    with Image.open(tmp_path / "p1.png") as picture:
        grey = picture.convert("L")
        width, height = grey.size
        assert abs(width / height - 210 / 297) < 0.01  # A4 portrait
        # The title 电子保险单 is drawn in the upper left: dark pixels there, not boxes.
        box = (int(width * 0.05), int(height * 0.05), int(width * 0.3), int(height * 0.1))
        dark = sum(grey.crop(box).histogram()[:128])
        assert dark > 200, dark


def test_lines_break_like_chinese_text() -> None:
    def measure(text: str) -> float:
        return float(len(text))

    lines = epolicy.break_lines(
        "保险期间为一年，自生效日零时起。访问http://x.cn/verify/AB12", 8, measure
    )
    assert all(len(line) <= 8 for line in lines)
    assert not any(line[0] in epolicy.NO_LINE_START for line in lines)
    assert "".join(lines) == "保险期间为一年，自生效日零时起。访问http://x.cn/verify/AB12"
    words = epolicy.break_lines("见 ABCDEFG 条", 6, measure)
    assert "ABCDEFG" not in "".join(words[:1]) and any("ABC" in w for w in words)
    assert epolicy.break_lines("甲\n乙", 5, measure) == ["甲", "乙"]


@needs_font
def test_long_texts_wrap_onto_more_pages(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    from dataclasses import replace

    from covernet.core.db import unit_of_work
    from covernet.policies.models import Policy

    if "postgresql" in db_url:
        pytest.skip("layout does not depend on the database; checked on SQLite")
    issued(client, customer_headers)
    with unit_of_work(db_url) as db:
        from sqlalchemy import select

        facts = epolicy.facts_of(db, db.scalars(select(Policy)).one())
    long = replace(
        facts,
        exclusions=tuple(
            f"第{i}项：" + "被保险人从事潜水、跳伞、攀岩等高风险运动。" * 6 for i in range(40)
        ),
        claims_procedure="请在出险后及时报案。" * 80,
    )
    pdf = epolicy.render(long)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    text = flat("".join(page.extract_text() for page in reader.pages))
    assert "第39项" in text and f"共{len(reader.pages)}页" in text


@needs_font
def test_a_policy_without_an_application_has_no_parties(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    """A partner's embedded micro-policy has no application: the document says so."""
    from sqlalchemy import select

    from covernet.core.db import unit_of_work
    from covernet.policies.models import Policy

    if "postgresql" in db_url:
        pytest.skip("does not depend on the database; checked on SQLite")
    issued(client, customer_headers)
    with unit_of_work(db_url) as db, db.no_autoflush:
        policy = db.scalars(select(Policy)).one()
        policy.application_id = None  # never flushed: the session is rolled back below
        facts = epolicy.facts_of(db, policy)
        db.rollback()
    assert facts.people == () and facts.beneficiaries is None
    text = flat(PdfReader(io.BytesIO(epolicy.render(facts))).pages[0].extract_text())
    assert "合作场景" in text and "张三" not in text
