"""The home page, the product pages and the quote form without JavaScript."""

from __future__ import annotations

from datetime import date
from typing import Any

from covernet.catalog.spec import LINE_LABELS
from covernet.core import clock
from covernet.core.cn_identity import make_id_number
from covernet.core.masking import mask_id_number
from tests.web.pagetree import Node, parse

HTML = {"accept": "text/html"}


def page(client: Any, path: str, status: int = 200, **kwargs: Any) -> Node:
    response = client.get(path, headers=HTML, **kwargs)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def product_of(catalog: Any, code: str) -> Any:
    return next(p for p in catalog.products if p.code == code)


def test_home_lists_the_products_by_line_in_chinese(client: Any, shipped_catalog: Any) -> None:
    doc = page(client, "/")
    assert doc.one("html").attrs["lang"] == "zh-CN"
    groups = doc.select("section", cls="line-group")
    lines = [g.attrs["data-line"] for g in groups]
    order = [line.value for line in LINE_LABELS]
    assert lines == [line for line in order if line in lines]
    assert lines == order  # the demo catalog sells in every line
    assert [g.one("h2").text for g in groups] == ["意外", "医疗", "重疾", "寿险", "财产", "旅行"]
    on_sale = {p.code for p in shipped_catalog.products if p.sale.status == "on_sale"}
    cards = {c.attrs["data-product"]: c for c in doc.select("li", cls="product-card")}
    assert set(cards) == on_sale

    accident = cards["accident-monthly"]
    assert accident.one("a").attrs["href"] == "/products/accident-monthly"
    assert accident.one("h3").text == "安心月月意外险（演示）"
    assert accident.one(cls="price").text == "¥5.00/月起"
    assert "演示" in accident.one(cls="badge--demo").text
    assert len(accident.one("ul", cls="ticks").select("li")) == len(
        product_of(shipped_catalog, "accident-monthly").highlights
    )
    assert cards["return-shipping"].one(cls="price").text == "每单¥0.50起"
    assert cards["medical-million"].one(cls="price").text == "¥60.00/年起"
    # Accident cards sit in the accident group.
    assert groups[0].select("li", cls="product-card", data_product="accident-monthly")


def test_home_shows_an_announced_stop_date_only_where_there_is_one(
    client: Any, shipped_catalog: Any
) -> None:
    doc = page(client, "/")
    for product in shipped_catalog.products:
        cards = doc.select("li", data_product=product.code)
        if not cards:
            continue
        stops = cards[0].select(cls="product-card__stop")
        if product.sale.stop_date is None:
            assert stops == []
        else:
            day = product.sale.stop_date
            assert stops[0].text == f"停售日期：{day.year}年{day.month}月{day.day}日"


def test_home_in_english_and_the_language_is_remembered(client: Any) -> None:
    response = client.get("/?lang=en", headers=HTML)
    assert response.status_code == 200
    assert "covernet_lang=en" in response.headers["set-cookie"]
    doc = parse(response.text)
    assert doc.one("html").attrs["lang"] == "en"
    titles = [g.one("h2").text for g in doc.select("section", cls="line-group")]
    assert titles == ["Accident", "Medical", "Critical illness", "Life", "Property", "Travel"]
    card = doc.one("li", data_product="accident-monthly")
    assert card.one(cls="price").text == "from ¥5.00/month"
    assert card.one("h3").text == "Anxin Monthly Accident Cover (demo)"
    assert card.one(cls="badge--demo").text == "Demo"
    assert doc.one("li", data_product="return-shipping").one(cls="price").text == (
        "from ¥0.50 per order"
    )

    again = page(client, "/")  # the cookie keeps English
    assert again.one("html").attrs["lang"] == "en"
    back = client.get("/?lang=zh", headers=HTML)
    assert "covernet_lang=zh" in back.headers["set-cookie"]
    assert page(client, "/").one("html").attrs["lang"] == "zh-CN"


def test_every_page_has_the_language_toggle(client: Any) -> None:
    for path in ("/", "/products/accident-monthly", "/login", "/register", "/nope/nothing"):
        response = client.get(path, headers=HTML)
        doc = parse(response.text)
        links = doc.one(cls="lang-toggle").select("a")
        assert [a.text for a in links] == ["中文", "EN"]
        assert links[1].attrs["href"].endswith("lang=en")
        assert links[0].attrs["aria-current"] == "true"


def test_product_page_highlights_the_exclusions(client: Any, shipped_catalog: Any) -> None:
    product = product_of(shipped_catalog, "accident-monthly")
    doc = page(client, "/products/accident-monthly")
    assert doc.one("h1").text == product.name.zh
    box = doc.by_id("exclusions")
    assert {"callout", "callout--warning"} <= box.classes
    assert box.one("h2").text == "责任免除"
    items = [li.text for li in box.one("ol").select("li")]
    assert items == [e.zh for e in product.terms.exclusions]


def test_product_page_states_what_the_buyer_must_know(client: Any, shipped_catalog: Any) -> None:
    product = product_of(shipped_catalog, "ci-lifetime")
    insurer = next(i for i in shipped_catalog.insurers if i.code == product.insurer)
    doc = page(client, f"/products/{product.code}")
    text = doc.one("main").text
    plans = doc.by_id("plans")
    for plan in product.plans:
        assert plan.name.zh in plans.text
        for coverage in plan.coverages:
            assert coverage.name.zh in plans.text
    facts = doc.by_id("facts").text
    assert f"{product.cooling_off_days}天" in facts
    assert f"{product.waiting_period_days}天" in facts
    assert f"{product.grace_period_days}天" in facts
    assert f"{product.eligibility.max_age}周岁" in facts
    health = doc.by_id("health")
    assert [li.text for li in health.one("ol").select("li")] == [
        q.text.zh for q in product.health_questions
    ]
    assert product.terms.claims_procedure.zh in doc.by_id("claims").text
    assert product.surrender.conditions.zh in doc.by_id("surrender").text
    about = doc.by_id("insurer")
    assert insurer.legal_name.zh in about.text
    assert insurer.service_phone in about.text
    assert insurer.complaint_channel.zh in about.text
    assert about.select(cls="badge--demo")
    assert product.terms.summary.zh in text
    notices = doc.by_id("disclosures").select("li", cls="disclosure")
    assert notices[0].attrs["data-code"] == "is_insurance"
    assert all(n.select("strong") for n in notices if "disclosure--emphasis" in n.classes)


def test_participating_product_states_uncertain_benefits_in_bold(
    client: Any, shipped_catalog: Any
) -> None:
    product = next(p for p in shipped_catalog.products if p.kind == "participating")
    doc = page(client, f"/products/{product.code}")
    notice = doc.by_id("disclosures").one("li", data_code="uncertain_benefits")
    assert "disclosure--emphasis" in notice.classes
    assert "保单利益具有不确定性" in notice.one("strong").text
    assert product.cash_values is not None
    rows = doc.by_id("surrender").one("tbody").select("tr")
    assert len(rows) == len(product.cash_values.rows)
    # Products with certain benefits carry no such notice.
    plain = page(client, "/products/accident-monthly")
    assert plain.by_id("disclosures").select("li", data_code="uncertain_benefits") == []


def test_short_term_medical_cover_says_renewal_is_not_guaranteed(client: Any) -> None:
    doc = page(client, "/products/medical-million")
    renewal = doc.by_id("renewal")
    assert renewal.one("strong").text == "不保证续保"
    assert "不保证续保" in renewal.one(cls="facts__note").text
    english = page(client, "/products/medical-million?lang=en")
    assert "Renewal not guaranteed" in english.by_id("renewal").text


def test_product_stop_date_is_shown_when_announced(client: Any, shipped_catalog: Any) -> None:
    announced = [p for p in shipped_catalog.products if p.sale.stop_date]
    assert announced
    for product in announced:
        day: date = product.sale.stop_date
        doc = page(client, f"/products/{product.code}")
        assert f"停售日期：{day.year}年{day.month}月{day.day}日" in doc.one("main").text
    assert "停售日期" not in page(client, "/products/accident-monthly").one("main").text


def test_unknown_product_is_a_localised_404_page(client: Any) -> None:
    doc = page(client, "/products/no-such-thing", status=404)
    assert doc.one("h1").text == "页面不存在"
    assert "没有找到这款产品" in doc.one("main").text
    english = page(client, "/products/no-such-thing?lang=en", status=404)
    assert english.one("h1").text == "Page not found"
    # A browser's generic Accept still gets the page; API clients keep JSON.
    plain = client.get("/products/no-such-thing")
    assert plain.status_code == 404 and plain.headers["content-type"].startswith("text/html")
    api = client.get("/api/v1/products/no-such-thing", headers=HTML)
    assert api.json()["error"] == "unknown_product"


def test_the_quote_form_offers_what_the_product_needs(client: Any) -> None:
    accident = page(client, "/products/accident-monthly").one("form", cls="quote-form")
    assert accident.attrs["action"] == "/products/accident-monthly/quote#quote"
    assert [i.attrs["value"] for i in accident.select("input", name="plan_code")] == [
        "basic",
        "plus",
    ]
    assert not any("checked" in i.attrs for i in accident.select("input", name="plan_code"))
    regions = accident.one("select", name="region").select("option")
    assert len(regions) == 32 and regions[0].attrs["value"] == ""
    assert accident.select("select", name="occupation_class")  # classes 1–4 only
    assert accident.select("input", name="birth_date") and accident.select(
        "input", name="id_number"
    )
    assert not accident.select(name="order_amount")
    per_order = page(client, "/products/return-shipping").one("form", cls="quote-form")
    assert per_order.select("input", name="order_amount")
    assert not per_order.select(name="birth_date")
    assert not per_order.select(name="occupation_class")
    doc = page(client, "/products/ci-lifetime")
    assert doc.one("select", name="term") and doc.one("select", name="payment")
    assert doc.by_id("quote-result").attrs["aria-live"] == "polite"


ACCIDENT_FORM = {
    "plan_code": "basic",
    "term": "1m",
    "payment": "monthly",
    "birth_date": "1990-05-20",
    "gender": "M",
    "region": "310000",
    "occupation_class": "1",
}


def test_quote_without_javascript_shows_the_premium(client: Any) -> None:
    response = client.post("/products/accident-monthly/quote", data=ACCIDENT_FORM, headers=HTML)
    assert response.status_code == 200, response.text[:2000]
    doc = parse(response.text)
    card = doc.by_id("quote-result").one(cls="quote-card")
    assert card.one(data_slot="premium").text == "¥5.00"
    assert card.one(data_slot="unit").text == "/月"
    assert card.one(data_slot="sum_insured").text == "30万"
    assert card.one(data_slot="plan").text == "基础版（30万元）"
    start = clock.today().toordinal() + 1
    effective = date.fromordinal(start)
    assert card.one(data_slot="effective_date").text == (
        f"{effective.year}年{effective.month}月{effective.day}日"
    )
    notices = card.one("ul", data_slot="disclosures").select("li")
    assert "是保险产品" in notices[0].text
    assert any(n.select("strong") for n in notices)
    # The form keeps what was entered.
    form = doc.one("form", cls="quote-form")
    assert "checked" in form.one("input", name="plan_code", value="basic").attrs
    assert form.one("input", name="birth_date").attrs["value"] == "1990-05-20"


def test_quote_without_javascript_in_english(client: Any) -> None:
    client.get("/?lang=en", headers=HTML)
    form = {**ACCIDENT_FORM, "plan_code": "plus"}
    doc = parse(client.post("/products/accident-monthly/quote", data=form, headers=HTML).text)
    card = doc.by_id("quote-result").one(cls="quote-card")
    assert card.one(data_slot="premium").text == "¥16.00"
    assert card.one(data_slot="unit").text == "/month"
    assert card.one(data_slot="sum_insured").text == "¥1M"


def test_quote_without_javascript_explains_an_age_out_of_range(client: Any) -> None:
    form = {**ACCIDENT_FORM, "birth_date": "2015-01-01"}
    response = client.post("/products/accident-monthly/quote", data=form, headers=HTML)
    assert response.status_code == 400
    doc = parse(response.text)
    error = doc.by_id("form-error")
    assert "本产品承保18至60周岁" in error.text
    assert doc.one("input", name="birth_date").attrs["aria-invalid"] == "true"
    assert not doc.by_id("quote-result").select(cls="quote-card")


def test_quote_without_javascript_reports_missing_and_wrong_fields(client: Any) -> None:
    cases = [
        ({**ACCIDENT_FORM, "plan_code": ""}, "请选择保障计划。", "plan_code"),
        ({**ACCIDENT_FORM, "region": ""}, "请选择被保险人所在的省份。", "region"),
        ({**ACCIDENT_FORM, "birth_date": "", "gender": ""}, "请填写被保险人的出生日期", None),
        ({**ACCIDENT_FORM, "birth_date": "1990-02-30"}, "请填写正确的出生日期", "birth_date"),
        ({**ACCIDENT_FORM, "occupation_class": "5"}, "该职业类别不在", "occupation_class"),
        ({**ACCIDENT_FORM, "id_number": "110105194912310021"}, "身份证号不正确", "id_number"),
    ]
    for form, message, field in cases:
        response = client.post("/products/accident-monthly/quote", data=form, headers=HTML)
        assert response.status_code == 400, (form, response.status_code)
        doc = parse(response.text)
        assert message in doc.by_id("form-error").text
        if field:
            marked = doc.one("form", cls="quote-form").select(aria_invalid="true")
            assert {m.attrs["name"] for m in marked} == {field}


def test_quote_without_javascript_by_id_number_and_per_order(client: Any) -> None:
    form = {**ACCIDENT_FORM, "birth_date": "", "gender": "", "id_number": "11010519491231002X"}
    doc = parse(client.post("/products/accident-monthly/quote", data=form, headers=HTML).text)
    assert "本产品承保18至60周岁" in doc.by_id("form-error").text  # born 1949: too old
    number = make_id_number("110105", date(1990, 1, 1), 1)
    form = {**ACCIDENT_FORM, "birth_date": "", "gender": "", "id_number": number}
    response = client.post("/products/accident-monthly/quote", data=form, headers=HTML)
    card = parse(response.text).by_id("quote-result").one(cls="quote-card")
    assert card.one(data_slot="id_number").text == mask_id_number(number)
    assert card.one(data_slot="premium").text == "¥5.00"

    order = {"plan_code": "standard", "region": "440000", "order_amount": "99"}
    response = client.post("/products/return-shipping/quote", data=order, headers=HTML)
    assert response.status_code == 200, response.text[:2000]
    card = parse(response.text).by_id("quote-result").one(cls="quote-card")
    assert card.one(data_slot="premium").text == "¥0.50"
    bad = {**order, "order_amount": "9.999"}
    response = client.post("/products/return-shipping/quote", data=bad, headers=HTML)
    assert response.status_code == 400
    assert "请填写正确的订单金额" in parse(response.text).by_id("form-error").text


def test_quote_result_page_reloaded_goes_back_to_the_form(client: Any) -> None:
    response = client.get("/products/accident-monthly/quote", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/products/accident-monthly#quote"
    assert client.post("/products/nope/quote", data=ACCIDENT_FORM).status_code == 404


def test_pages_send_a_strict_content_security_policy(client: Any) -> None:
    response = client.get("/products/accident-monthly", headers=HTML)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert " style=" not in response.text and "<script>" not in response.text
    for asset in ("/static/css/site.css", "/static/js/quote.js", "/static/img/icon.svg"):
        assert client.get(asset).status_code == 200
