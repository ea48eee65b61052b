"""Tests for the marketing-text compliance checker (R2, R4, R7, R12, R23–R27)."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from covernet.catalog.spec import Kind
from covernet.compliance.checker import (
    AdvisorIdentity,
    RuleSet,
    check,
    load_rules,
    normalize,
    parse_rules,
)
from covernet.core.errors import ValidationFailed

from ..catalog.helpers import make_product, product, shipped

ROOT = Path(__file__).resolve().parents[2]
RULES_PATH = ROOT / "catalog" / "rules" / "marketing.yaml"
CORPUS_PATH = Path(__file__).with_name("corpus.yaml")


@cache
def rules() -> RuleSet:
    return load_rules(RULES_PATH)


@cache
def corpus() -> list[dict[str, Any]]:
    data = yaml.safe_load(CORPUS_PATH.read_text("utf-8"))
    sentences = data["sentences"]
    assert isinstance(sentences, list)
    return sentences


def ids(text: str, **kw: Any) -> set[str]:
    return check(text, rules=rules(), **kw).rule_ids


# Normalization -----------------------------------------------------------------------


def test_normalize_full_width_traditional_and_separators() -> None:
    norm, index = normalize("ｎｏ．１ 穩*賺")
    assert norm == "no1稳赚"
    assert index == [0, 1, 3, 5, 7]


def test_normalize_drops_emoji_and_zero_width() -> None:
    text = "稳\u200b❤️赚"
    norm, index = normalize(text)
    assert norm == "稳赚"
    assert [text[i] for i in index] == ["稳", "赚"]


SEPARATORS = [" ", "　", "·", "、", "*", "_", "-", "|", "/", ".", "❤️", "🔥", "\u200b", "，"]
SAFE = st.text(alphabet="今天给大家分享一个保障计划欢迎咨询好的谢谢", max_size=8)


def _phrase_examples() -> list[tuple[str, str]]:
    out = []
    for rule in rules().rules:
        out.extend((rule.id, p) for p in rule.phrases if normalize(p)[0].isascii() is False)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_phrase_examples()),
    st.data(),
    SAFE,
    SAFE,
)
def test_separators_inside_a_banned_phrase_are_seen_through(
    example: tuple[str, str], data: st.DataObject, before: str, after: str
) -> None:
    rule_id, phrase = example
    pieces = []
    for ch in phrase:
        pieces.append(ch)
        pieces.append(data.draw(st.lists(st.sampled_from(SEPARATORS), max_size=2).map("".join)))
    spaced = "".join(pieces[:-1])
    text = before + "。" + spaced + "。" + after
    result = check(text, rules=rules())
    hits = [f for f in result.findings if f.rule_id == rule_id]
    assert hits, (text, rule_id)
    start = len(before) + 1
    end = start + len(spaced)
    # The phrase may be found as part of a longer match; it covers the phrase's characters.
    assert any(f.span[0] <= start and f.span[1] >= end for f in hits), (text, hits)
    for f in hits:
        assert f.excerpt == text[f.span[0] : f.span[1]]


def test_span_points_at_the_original_text() -> None:
    text = "家人们，这款 稳 * 赚 的产品"
    (finding,) = check(text, rules=rules()).findings
    assert finding.excerpt == "稳 * 赚"
    assert text[finding.span[0] : finding.span[1]] == "稳 * 赚"


# Rule families: one failing and one passing example each ------------------------------

FAMILIES = [
    ("R23.superlative", "全网最低价的意外险", "意外险最高赔付50万元，以条款为准"),
    ("R23.regulator_guarantee", "有银保监会担保，放心买", "保险责任由保险公司按合同承担"),
    ("R24.guaranteed_return", "这款年金保本稳赚", "本产品不保本，账户价值可能下跌"),
    ("R24.savings_framing", "利息比银行存款高", "保险不是存款，不能与存款比较"),
    ("R25.stop_sale_hype", "即将停售，最后一波", "停售日期以保险公司公告为准"),
    ("R26.nondisclosure", "健康告知随便填，带病投保也能赔", "请如实告知健康状况"),
    ("R26.churning", "专业代理退保，全额退保", "退保请本人通过官方渠道办理"),
    ("R4.outside_benefit", "投保送现金红包，还能抽奖", "直播间只讲保障责任"),
    ("R12.gift", "关注即免费送重疾险", "赠送意外险一份，保费不超过100元"),
]


@pytest.mark.parametrize(("rule_id", "bad", "good"), FAMILIES)
def test_rule_family(rule_id: str, bad: str, good: str) -> None:
    result = check(bad, rules=rules())
    assert rule_id in result.rule_ids
    assert result.verdict in ("fail", "review")
    finding = next(f for f in result.findings if f.rule_id == rule_id)
    assert finding.citation and finding.suggestion
    assert ids(good) == set()
    assert check(good, rules=rules()).verdict == "pass"


def test_guaranteed_return_is_fail_for_uncertain_products_review_otherwise() -> None:
    annuity = product("annuity-participating")
    assert annuity.kind is Kind.participating
    protection = product("ci-lifetime")
    text = "这份保险零风险，保单利益不确定"
    assert check(text, rules=rules(), products=[protection]).verdict == "review"
    assert check(text, rules=rules(), products=[annuity]).verdict == "fail"
    assert check("分红险稳赚", rules=rules()).verdict == "fail"


# Negation and disclaimer scope ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        # A negation or warning earlier in the clause, however far back.
        ("我不会说它是最便宜的，适不适合要看你的需求", "R23.superlative"),
        ("不要把保险当成储蓄，它的作用是转移风险", "R24.savings_framing"),
        ("费率调整以保险公司公告为准，不存在所谓的末班车", "R25.stop_sale_hype"),
        ("不要听信别人说的告知随便填", "R26.nondisclosure"),
        # A verdict after the hit: reported speech.
        ("有人私信说给返现的都是违规的，大家别信", "R4.outside_benefit"),
        ("有人说国家会兜底，这是误导", "R23.regulator_guarantee"),
        ("隐瞒病史可能被拒赔", "R26.nondisclosure"),
        ("利息、本金这些是存款的概念，保险合同里没有，别被误导", "R24.savings_framing"),
    ],
)
def test_negated_or_disclaimed_hits_are_dropped(text: str, rule_id: str) -> None:
    assert rule_id not in ids(text)


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        # A negation in another clause does not reach the hit.
        ("不用担心，国家兜底", "R23.regulator_guarantee"),
        # 不是…而是…: the contrast ends the negation's reach.
        ("它不是最便宜的而是最划算的", "R23.superlative"),
        ("不是最便宜的，但绝对是最好的", "R23.superlative"),
        # A negation that urges negates nothing.
        ("千万不要错过末班车", "R25.stop_sale_hype"),
        ("别犹豫了，全网最低价", "R23.superlative"),
    ],
)
def test_claims_outside_a_negation_still_hit(text: str, rule_id: str) -> None:
    assert rule_id in ids(text)


def test_not_cheapest_but_best_flags_only_the_claim() -> None:
    text = "它不是最便宜的而是最划算的"
    (finding,) = [f for f in check(text, rules=rules()).findings if f.rule_id == "R23.superlative"]
    assert finding.excerpt == "最划算"


# Round 3: aliases, literal words, mentions, product terms ------------------------------


@pytest.mark.parametrize(
    ("text", "rule_id", "excerpt"),
    [
        ("gj兜底的惠民保", "R23.regulator_guarantee", "gj兜底"),
        ("产品马上下jia", "R25.stop_sale_hype", "马上下jia"),
        ("代理t保找我", "R26.churning", "代理t保"),
        ("fan现活动进行中", "R4.outside_benefit", "fan现"),
        ("年金险就是储xu罐", "R24.savings_framing", "储xu"),
    ],
)
def test_aliases_are_rewritten_before_matching(text: str, rule_id: str, excerpt: str) -> None:
    hits = [f for f in check(text, rules=rules()).findings if f.rule_id == rule_id]
    assert [f.excerpt for f in hits] == [excerpt]


def test_tb_is_not_aliased_it_is_both_toubao_and_tuibao() -> None:
    assert ids("tb前一定要搞清楚保什么、不保什么") == set()


@pytest.mark.parametrize(
    ("literal", "claim", "rule_id"),
    [
        ("地铁末班车是23点，大家早点回家", "这是今年的末班车，抓紧", "R25.stop_sale_hype"),
        ("过年给孩子发红包之余，也看看保障", "投保就发红包", "R4.outside_benefit"),
        ("天花板漏水属于家财险的范畴", "这款是重疾险的天花板", "R23.superlative"),
        ("房贷利息今年又降了", "年金的利息比银行高", "R24.savings_framing"),
        ("查不到保单？登录官方App就能查", "健康告知随便填，保险公司查不到", "R26.nondisclosure"),
    ],
)
def test_trigger_words_used_literally(literal: str, claim: str, rule_id: str) -> None:
    assert rule_id not in ids(literal)
    assert rule_id in ids(claim)


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("“第一”“最好”这种词我们直播间是不能说的", "R23.superlative"),
        ("利息、收益、本金这些词不适合描述保险", "R24.savings_framing"),
        ("稳.赚.不.赔这种话术听到就快跑", "R24.guaranteed_return"),
        ("手慢无？不存在的，按需买就行", "R25.stop_sale_hype"),
        ("有宝子问分红险会不会亏：是可能亏的", "R24.guaranteed_return"),
        ("之前有粉丝被忽悠全额退保，大家一定要警惕", "R26.churning"),
        ("退旧买新要慎重：旧保单退保只能拿回现金价值", "R26.churning"),
    ],
)
def test_words_talked_about_are_not_claims(text: str, rule_id: str) -> None:
    assert rule_id not in ids(text)


def test_a_product_whose_terms_refund_in_full_may_say_so() -> None:
    text = "退货运费险在订单发货前可以取消，保费全额退还"
    assert "R26.churning" not in ids(text, products=[product("return-shipping")])
    # Without the before-dispatch condition, the annuity's terms allow no full refund.
    promise = "买了不满意？随时全额退保"
    assert "R26.churning" in ids(promise, products=[product("annuity-participating")])
    assert "R26.churning" in ids(promise)


def test_scarcity_is_hype_even_with_a_published_stop_date() -> None:
    announced = product("account-security")
    assert "R25.stop_sale_hype" in ids("账户安全险要停售了，手慢无", products=[announced])
    assert "R25.stop_sale_hype" not in ids("账户安全险即将停售", products=[announced])


@pytest.mark.parametrize(
    ("text", "code", "wrong"),
    [
        ("康宁百万医疗一年六十块", "medical-million", False),
        ("康宁百万医疗一年八十块", "medical-million", True),
        ("康宁住院医疗险40岁也只要60元一年", "medical-million", True),
        ("康宁住院医疗险40岁每年98元", "medical-million", False),
        ("30岁男士，长生终身重疾一年才5000出头", "ci-lifetime", True),
        ("30岁男士，长生终身重疾一年8000多", "ci-lifetime", False),
        ("长生年年有约每年交5000，只交5年", "annuity-participating", True),
        ("长生年年有约每年领5000元年金", "annuity-participating", True),
        ("长生年年有约每年领2000元年金", "annuity-participating", False),
        ("扣除每次500元免赔额后按100%赔付，保额30万元", "travel-medical", False),
    ],
)
def test_catalog_prices_in_words_ranges_and_ages(text: str, code: str, wrong: bool) -> None:
    assert bool(_price_findings(text, code)) is wrong


# Structural checks -------------------------------------------------------------------

ADVISOR = AdvisorIdentity(
    name="张敏", institution="演示人寿保险股份有限公司", license_no="0201234567890001"
)


def test_says_insurance() -> None:
    item = product("ci-lifetime")
    assert "R23.says_insurance" in ids("这款产品保障很全面，欢迎咨询", products=[item])
    assert ids("这款重疾保险保障很全面，欢迎咨询", products=[item]) == set()
    # Without a product the text is not about one.
    assert ids("欢迎咨询") == set()


def test_advisor_identity() -> None:
    full = "重疾保险讲解。销售人员：张敏，演示人寿保险股份有限公司，执业证编号0201234567890001"
    assert ids(full, advisor=ADVISOR) == set()
    result = check("重疾保险讲解。销售人员：张敏", rules=rules(), advisor=ADVISOR)
    assert result.verdict == "fail"
    (finding,) = result.findings
    assert finding.rule_id == "R2.advisor_identity"
    assert "机构全称" in finding.message and "执业证编号" in finding.message
    assert "姓名" not in finding.message
    # Full-width digits and spaces still show the number.
    spaced = full.replace("0201234567890001", "０２０１ ２３４５ ６７８９ ０００１")
    assert ids(spaced, advisor=ADVISOR) == set()
    # Only promotions need it; other kinds of text do not.
    assert ids("重疾保险讲解", advisor=ADVISOR, kind="faq") == set()
    for kind in ("post", "moments", "live_script", "group_message"):
        assert "R2.advisor_identity" in ids("重疾保险讲解", advisor=ADVISOR, kind=kind)


def test_uncertainty_statement() -> None:
    annuity = product("annuity-participating")
    assert "R7.uncertainty_statement" in ids("年金保险，每年领取", products=[annuity])
    assert ids("年金保险，红利分配不确定", products=[annuity]) == set()
    assert ids("年金保险，保单利益具有不确定性", products=[annuity]) == set()
    assert ids("重疾保险，确诊即赔", products=[product("ci-lifetime")]) == set()


def test_stop_sale_hype_allowed_only_with_a_published_stop_date() -> None:
    announced = product("account-security")
    assert announced.sale.stop_date is not None
    plain = product("accident-monthly")
    assert plain.sale.stop_date is None
    text = "账户安全保险即将停售，最后机会"
    assert "R25.stop_sale_hype" in ids(text)
    assert "R25.stop_sale_hype" in ids(text, products=[plain])
    assert "R25.stop_sale_hype" not in ids(text, products=[announced])
    assert check(text, rules=rules(), products=[announced]).verdict == "pass"


def test_catalog_names() -> None:
    names = [product("ci-lifetime").name.zh, product("accident-monthly").name.zh]
    text = "推荐《长生终身重大疾病保险》和「福满堂两全保险」"
    result = check(text, rules=rules(), catalog_names=names)
    (finding,) = result.findings
    assert finding.rule_id == "R23.catalog_names"
    assert finding.excerpt == "福满堂两全保险"
    assert result.verdict == "review"
    # Without the catalog the check is off.
    assert ids(text) == set()


def test_verdict_order() -> None:
    assert check("一款普通的意外保险", rules=rules()).verdict == "pass"
    assert check("这份意外保险无风险", rules=rules()).verdict == "review"
    assert check("这份意外保险无风险，全网最低价", rules=rules()).verdict == "fail"


def test_make_product_variant_with_stop_date() -> None:
    variant = make_product(
        "ci-lifetime", sale={"stop_notice_date": "2026-10-01", "stop_date": "2026-12-31"}
    )
    assert "R25.stop_sale_hype" not in ids("重疾保险末班车", products=[variant])


# Rule file validation ----------------------------------------------------------------


def _rule(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "R23.test",
        "rule": "R23",
        "severity": "fail",
        "citation": "广告法第9条",
        "suggestion": "删除",
        "phrases": ["最好"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_shipped_rules_load() -> None:
    loaded = rules()
    assert loaded.version == 1
    families = {r.id for r in loaded.rules}
    for rule_id, _, _ in FAMILIES:
        assert rule_id in families


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (_rule(id="R24.bad_regex", rule="R24", phrases=None, patterns=["(稳赚"]), "R24.bad_regex"),
        (_rule(id="R24.empty", rule="R24", phrases=None, patterns=["a?"]), "R24.empty"),
        (_rule(severity="maybe"), "R23.test"),
        (_rule(structural="says_insurance"), "R23.test"),
        (_rule(phrases=None), "R23.test"),
        (_rule(structural="no_such_check", phrases=None), "R23.test"),
        (_rule(id="R24.mismatch"), "R24.mismatch"),
        (_rule(phrases=["、 "]), "R23.test"),
    ],
)
def test_bad_rules_are_rejected_naming_the_rule(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_rules({"version": 1, "rules": [bad]})
    assert needle in caught.value.message


def test_bad_aliases_are_rejected() -> None:
    for alias in ({"match": "(gj", "to": "国家"}, {"match": "a?", "to": "国家"}):
        with pytest.raises(ValidationFailed):
            parse_rules({"version": 1, "aliases": [alias], "rules": [_rule()]})


def test_bad_rule_files_are_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text("version: 1\nrules: [\n", "utf-8")
    with pytest.raises(ValidationFailed):
        load_rules(broken)
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump({"version": 1, "rules": [_rule(), _rule()]}), "utf-8")
    with pytest.raises(ValidationFailed, match="repeat"):
        load_rules(twice)
    with pytest.raises(ValidationFailed):
        parse_rules({"version": 0, "rules": [_rule()]})


# Corpus ------------------------------------------------------------------------------

# Measured on the corpus (256 sentences) the rules were tuned against: precision 1.00,
# recall 1.00, every family 1.00.  The 45 held-out sentences scored precision 1.00 and
# recall 0.36 before the rules were widened, so these floors leave only a little room.
MIN_PRECISION = 0.95
MIN_RECALL = 0.95
MIN_FAMILY_RECALL = 0.9


def test_corpus_shape() -> None:
    sentences = corpus()
    assert len(sentences) >= 200
    compliant = sum(1 for s in sentences if not s["rules"])
    assert 0.35 <= compliant / len(sentences) <= 0.65
    known = {r.id for r in rules().rules}
    for s in sentences:
        assert set(s["rules"]) <= known, s
    assert len({s["text"] for s in sentences}) == len(sentences)


def test_corpus_precision_and_recall() -> None:
    tp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    flagged_ok = flagged_bad = missed_bad = 0
    for s in corpus():
        expected = set(s["rules"])
        got = ids(s["text"])
        for rule_id in expected & got:
            tp[rule_id] += 1
        for rule_id in expected - got:
            fn[rule_id] += 1
        for rule_id in got - expected:
            fp[rule_id] += 1
        if expected and got:
            flagged_bad += 1
        elif expected:
            missed_bad += 1
        elif got:
            flagged_ok += 1
    total_tp, total_fn, total_fp = sum(tp.values()), sum(fn.values()), sum(fp.values())
    assert total_tp / (total_tp + total_fp) >= MIN_PRECISION, fp
    assert total_tp / (total_tp + total_fn) >= MIN_RECALL, fn
    for family in set(tp) | set(fn):
        assert tp[family] / (tp[family] + fn[family]) >= MIN_FAMILY_RECALL, family
    # Sentence level: non-compliant sentences flagged, compliant ones left alone.
    assert flagged_bad / (flagged_bad + missed_bad) >= MIN_RECALL
    assert flagged_bad / (flagged_bad + flagged_ok) >= MIN_PRECISION


# Catalog prices (R23.catalog_prices) ---------------------------------------------------


def _price_findings(text: str, *codes: str) -> list[Any]:
    result = check(text, rules=rules(), products=[product(c) for c in codes])
    return [f for f in result.findings if f.rule_id == "R23.catalog_prices"]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("安心月月意外保险，每月5元保30万，每月16元保100万", ("accident-monthly",)),
        ("意外保险¥16/月，最高赔100万", ("accident-monthly",)),
        ("意外保险5元/月起，一年只要60元", ("accident-monthly",)),
        ("住院医疗保险，30岁以下每年60元，保额50万", ("medical-million",)),
        ("航班延误保险每段20元，延误满3小时赔200元", ("flight-delay",)),
        ("意外保险每月5元，医疗保险每年98元", ("accident-monthly", "medical-million")),
    ],
)
def test_catalog_prices_that_match_pass(text: str, codes: tuple[str, ...]) -> None:
    assert _price_findings(text, *codes) == []


def test_catalog_prices_that_do_not_match_fail_naming_the_figure() -> None:
    text = "安心月月意外保险，每月3元保30万"
    (finding,) = _price_findings(text, "accident-monthly")
    assert finding.severity == "fail"
    assert "第17条" in finding.citation
    assert "3元" in finding.excerpt and "3元" in finding.message
    assert text[finding.span[0] : finding.span[1]] == finding.excerpt
    assert check(text, rules=rules(), products=[product("accident-monthly")]).verdict == "fail"
    # A wrong sum insured is caught too, and named.
    (wrong_sum,) = _price_findings("意外保险一个月只要5块，保额50万", "accident-monthly")
    assert "50万" in wrong_sum.message
    # Full-width figures are read as well.
    assert _price_findings("意外保险１５元／月", "accident-monthly")


def test_catalog_prices_not_checked_without_products() -> None:
    assert "R23.catalog_prices" not in ids("意外保险每月3元保30万")


# Data sources (R27.data_source) ---------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["理赔率高达99%，放心买", "去年这款产品赔付了10万人", "95%的客户都选择了升级版"]
)
def test_statistics_without_a_source_are_flagged(text: str) -> None:
    assert "R27.data_source" in ids(text)


@pytest.mark.parametrize(
    "text",
    [
        "理赔率99%（数据来源：公司2023年度理赔报告）",
        "据中国保险行业协会统计，理赔率达到98.5%",
        "理赔率98%，来源：公司年报",
        "等待期30天，免赔额1万元",
    ],
)
def test_statistics_with_a_source_pass(text: str) -> None:
    assert "R27.data_source" not in ids(text)


def test_decimal_point_and_percent_survive_normalization() -> None:
    assert normalize("理赔率 99.5％")[0] == "理赔率99.5%"
    assert normalize("no.1")[0] == "no1"


# Held-out set (tests/compliance/heldout.yaml) -------------------------------------------

HELDOUT_PATH = Path(__file__).with_name("heldout.yaml")

# Round 1, tuned on the dev split only (labels, then sentences):
#   dev  (127 sentences): precision 0.949, recall 1.000; sentences 1.000 / 1.000
#   test (121 sentences): precision 0.817, recall 0.710; sentences 0.828 / 0.716
# Round 2 (clause-based negation, per-family patterns) learnt from BOTH splits, so neither is
# held out any more; the blind figures are heldout2.yaml's below.  Measured after round 2:
#   dev:  precision 0.949, recall 1.000; sentences 1.000 / 1.000
#   test: precision 0.986, recall 0.986; sentences 1.000 / 1.000
# After round 3 (aliases, literal words, mentions, product terms, prices in words):
#   dev:  precision 0.962, recall 1.000; test: precision 0.986, recall 1.000
# The floors sit a little below, so a rule change that loses recall or precision shows up.
HELDOUT_FLOORS = {"dev": (0.93, 0.97), "test": (0.95, 0.97)}


@cache
def heldout() -> list[dict[str, Any]]:
    sentences = yaml.safe_load(HELDOUT_PATH.read_text("utf-8"))["sentences"]
    assert isinstance(sentences, list)
    return sentences


def test_heldout_shape() -> None:
    sentences = heldout()
    assert len(sentences) >= 200
    compliant = sum(1 for s in sentences if not s["rules"])
    assert 0.35 <= compliant / len(sentences) <= 0.55
    known = {r.id for r in rules().rules}
    codes = {p.code for p in shipped().products}
    for s in sentences:
        assert s["split"] in ("dev", "test"), s
        assert set(s["rules"]) <= known, s
        assert set(s.get("products", [])) <= codes, s
    assert len({s["text"] for s in sentences}) == len(sentences)
    # Every labelled rule has sentences in both splits.
    for rule_id in {r for s in sentences for r in s["rules"]}:
        splits = {s["split"] for s in sentences if rule_id in s["rules"]}
        assert splits == {"dev", "test"}, rule_id


@pytest.mark.parametrize("split", ["dev", "test"])
def test_heldout_precision_and_recall(split: str) -> None:
    sentences = heldout()
    # Only rules the set labels are scored (it does not label R2, R7 or R23.says_insurance).
    scored = {r for s in sentences for r in s["rules"]}
    tp = fp = fn = 0
    for s in (s for s in sentences if s["split"] == split):
        expected = set(s["rules"])
        got = ids(s["text"], products=[product(c) for c in s.get("products", [])]) & scored
        tp += len(expected & got)
        fp += len(got - expected)
        fn += len(expected - got)
    min_precision, min_recall = HELDOUT_FLOORS[split]
    assert tp / (tp + fp) >= min_precision, (tp, fp)
    assert tp / (tp + fn) >= min_recall, (tp, fn)


# Blind held-out set #2 (tests/compliance/heldout2.yaml) ---------------------------------

HELDOUT2_PATH = Path(__file__).with_name("heldout2.yaml")

# Written by someone else without reading the rules, the checker or the other sets, and
# scored ONCE, blind, after the round-2 rules were committed (246 sentences, 110 compliant):
#   labels:    precision 0.847, recall 0.744 (116 tp, 21 fp, 40 fn)
#   sentences: precision 0.858, recall 0.801
# Round 3 TRAINED on this file (it is no longer blind; heldout3.yaml is):
#   labels:    precision 1.000, recall 0.994 (155 tp, 0 fp, 1 fn)
#   sentences: precision 1.000, recall 0.993
HELDOUT2_FLOORS = {"labels": (0.97, 0.96), "sentences": (0.97, 0.96)}


def _blind_scores(path: Path) -> tuple[float, float, float, float]:
    """Label precision and recall, then sentence precision and recall, on a labelled file."""
    data = yaml.safe_load(path.read_text("utf-8"))
    sentences: list[dict[str, Any]] = data["sentences"]
    assert len(sentences) >= 200
    scored = {r for s in sentences for r in s.get("rules", [])}
    tp = fp = fn = 0
    flagged_bad = flagged_ok = missed_bad = 0
    for s in sentences:
        expected = set(s.get("rules", []))
        got = ids(s["text"], products=[product(c) for c in s.get("products", [])]) & scored
        tp += len(expected & got)
        fp += len(got - expected)
        fn += len(expected - got)
        if expected and got:
            flagged_bad += 1
        elif expected:
            missed_bad += 1
        elif got:
            flagged_ok += 1
    return (
        tp / (tp + fp),
        tp / (tp + fn),
        flagged_bad / (flagged_bad + flagged_ok),
        flagged_bad / (flagged_bad + missed_bad),
    )


def test_heldout2_precision_and_recall() -> None:
    precision, recall, sent_precision, sent_recall = _blind_scores(HELDOUT2_PATH)
    assert precision >= HELDOUT2_FLOORS["labels"][0]
    assert recall >= HELDOUT2_FLOORS["labels"][1]
    assert sent_precision >= HELDOUT2_FLOORS["sentences"][0]
    assert sent_recall >= HELDOUT2_FLOORS["sentences"][1]


# Blind held-out set #3 (tests/compliance/heldout3.yaml) ---------------------------------

HELDOUT3_PATH = Path(__file__).with_name("heldout3.yaml")

# Written by someone else while round 3 was tuned, and scored ONCE, blind, after the round-3
# rules were committed (305 sentences, 133 compliant); the rules were not changed after:
#   labels:    precision 0.871, recall 0.644 (121 tp, 18 fp, 67 fn)
#   sentences: precision 0.871, recall 0.669
# The honest figure for new wording, short of the 0.9/0.9 goal.  Do not tune the rules on
# this file: the floors only catch a change that loses ground on it.
HELDOUT3_FLOORS = {"labels": (0.84, 0.62), "sentences": (0.84, 0.64)}


def test_heldout3_precision_and_recall() -> None:
    precision, recall, sent_precision, sent_recall = _blind_scores(HELDOUT3_PATH)
    assert precision >= HELDOUT3_FLOORS["labels"][0]
    assert recall >= HELDOUT3_FLOORS["labels"][1]
    assert sent_precision >= HELDOUT3_FLOORS["sentences"][0]
    assert sent_recall >= HELDOUT3_FLOORS["sentences"][1]
