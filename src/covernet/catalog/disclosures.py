"""The prompts a buyer must see before purchase (R5, R7, R8, R17).

:func:`disclosures_for` derives them from the product declaration, so a product
cannot be listed without them.  Emphasised disclosures are shown in bold and at
least as large as the product name (R7) and are confirmed on their own page (R13).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from covernet.catalog.spec import HEALTH_LINES, NOT_GUARANTEED_RENEWAL, Insurer, Kind, Product
from covernet.core.i18n_text import I18nText

# R7 (银保监规〔2022〕24号 Art 4): the statement the buyer types before buying a
# participating, universal or unit-linked product.
UNCERTAINTY_STATEMENT = (
    "本人已阅读保险条款、产品说明书和投保提示书，了解本产品的特点和保单利益的不确定性"
)
UNCERTAINTY_STATEMENT_EN = (
    "I have read the policy terms, the product brochure and the application notice, "
    "and I understand the features of this product and the uncertainty of its policy benefits"
)


@dataclass(frozen=True)
class Disclosure:
    code: str
    text: I18nText
    emphasis: bool
    rule: str

    @cached_property
    def body(self) -> dict[str, Any]:
        """The JSON form (built once: disclosures live as long as their catalog version)."""
        return {
            "code": self.code,
            "text": self.text.model_dump(),
            "emphasis": self.emphasis,
            "rule": self.rule,
        }


def yuan(fen: int) -> str:
    """``1050`` -> ``"10.50"``, ``1000`` -> ``"10"``."""
    whole, cents = divmod(fen, 100)
    return f"{whole:,}" if cents == 0 else f"{whole:,}.{cents:02d}"


_UNCERTAINTY: dict[Kind, I18nText] = {
    Kind.participating: I18nText(
        zh="本产品为分红保险，保单利益具有不确定性。红利分配水平取决于保险公司分红保险业务的"
        "实际经营成果，某些年度的红利可能为零；红利演示仅为说明用途，不代表未来实际分配水平。",
        en="This is a participating (分红) product and its policy benefits are uncertain. "
        "Dividends depend on the insurer's actual results for its participating business and "
        "may be zero in some years; illustrated dividends are examples, not a forecast.",
    ),
    Kind.universal: I18nText(
        zh="本产品为万能保险，保单利益具有不确定性。万能账户的结算利率超过最低保证利率的部分"
        "是不确定的，利益演示仅为说明用途，不代表未来实际结算利率。",
        en="This is a universal (万能) product and its policy benefits are uncertain. "
        "Crediting above the minimum guaranteed rate is not certain; illustrations are "
        "examples, not a forecast.",
    ),
    Kind.unit_linked: I18nText(
        zh="本产品为投资连结保险，保单利益具有不确定性。投资账户价值随投资表现波动，可能低于"
        "您交纳的保险费，投资风险由投保人承担。",
        en="This is a unit-linked (投连) product and its policy benefits are uncertain. "
        "The account value moves with investment performance, may fall below the premiums "
        "you paid, and the investment risk is yours.",
    ),
}


def _is_insurance(product: Product, insurer: Insurer) -> Disclosure:
    return Disclosure(
        "is_insurance",
        I18nText(
            zh=f"您购买的「{product.name.zh}」是保险产品，由{insurer.legal_name.zh}承保，"
            "不是存款或其他金融产品。请仔细阅读保险条款、产品说明和投保须知。",
            en=f"{product.name.en or product.name.zh} is an insurance product underwritten by "
            f"{insurer.legal_name.en or insurer.legal_name.zh}; it is not a deposit or another "
            "financial product. Please read the policy terms, product summary and notices.",
        ),
        emphasis=False,
        rule="R5",
    )


def _uncertain_benefits(product: Product) -> Disclosure:
    base = _UNCERTAINTY[product.kind]
    return Disclosure(
        "uncertain_benefits",
        I18nText(
            zh=f"{base.zh}投保时请您亲自录入以下声明：“{UNCERTAINTY_STATEMENT}”。",
            en=f"{base.en} Before buying you type this statement yourself: "
            f"“{UNCERTAINTY_STATEMENT_EN}”.",
        ),
        emphasis=True,
        rule="R7",
    )


def _exclusions(product: Product) -> Disclosure:
    items = product.terms.exclusions
    zh_items = "；".join(f"（{n}）{e.zh}" for n, e in enumerate(items, start=1))
    en_items = "; ".join(f"({n}) {e.en or e.zh}" for n, e in enumerate(items, start=1))
    return Disclosure(
        "exclusions",
        I18nText(
            zh=f"请您重点阅读责任免除条款，以下情形本公司不承担保险责任：{zh_items}。",
            en=f"Please read the exclusions carefully. The insurer does not pay in these cases: "
            f"{en_items}.",
        ),
        emphasis=True,
        rule="R5",
    )


def _waiting_period(product: Product) -> Disclosure:
    days = product.waiting_period_days
    renew_zh = "；连续续保不再设等待期" if product.short_term else ""
    renew_en = "; uninterrupted renewals have none" if product.short_term else ""
    return Disclosure(
        "waiting_period",
        I18nText(
            zh=f"本产品设有{days}天等待期：自合同生效日起{days}天内因意外伤害以外的原因发生的"
            f"保险事故，本公司不承担保险责任{renew_zh}。",
            en=f"This product has a {days}-day waiting period: events in the first {days} days "
            f"after cover starts are not covered unless caused by an accident{renew_en}.",
        ),
        emphasis=True,
        rule="R5",
    )


def _cooling_off(product: Product) -> Disclosure:
    days = product.cooling_off_days
    fee = product.cooling_off_fee_fen
    fee_zh = f"扣除不超过{yuan(fee)}元的工本费后" if fee else "全额"
    fee_en = f"less a fee of at most {yuan(fee)} yuan" if fee else "in full"
    after_zh = "，之后解除合同将退还保单的现金价值" if product.cash_values else ""
    after_en = "; after it, cancelling pays the cash value" if product.cash_values else ""
    return Disclosure(
        "cooling_off",
        I18nText(
            zh=f"本产品犹豫期为{days}天：自您收到保险合同（含电子保单）之日起{days}天内解除合同，"
            f"本公司{fee_zh}无息退还您所交的保险费{after_zh}。",
            en=f"Cooling-off period (犹豫期): {days} days from receiving the policy. Cancel "
            f"within them and the premium is refunded {fee_en}{after_en}.",
        ),
        emphasis=True,
        rule="R17",
    )


def _grace_period(product: Product) -> Disclosure:
    days = product.grace_period_days
    return Disclosure(
        "grace_period",
        I18nText(
            zh=f"分期交费的宽限期为{days}天：宽限期内发生保险事故仍承担保险责任，"
            "宽限期结束仍未交费的，合同效力中止。",
            en=f"Instalments have a {days}-day grace period: cover continues during it; "
            "if the premium is still unpaid when it ends, the policy lapses.",
        ),
        emphasis=False,
        rule="R5",
    )


def _renewal(product: Product) -> Disclosure:
    renewal = product.renewal
    note = renewal.note
    if not product.short_term:
        text = note
    elif renewal.guaranteed:
        years_zh = f"{renewal.years}年" if renewal.years else ""
        years_en = f" for {renewal.years} years" if renewal.years else ""
        text = I18nText(
            zh=f"本产品保证续保{years_zh}。{note.zh}",
            en=f"Renewal is guaranteed{years_en}. {note.en or note.zh}",
        )
    else:
        stated = NOT_GUARANTEED_RENEWAL in note.zh
        text = I18nText(
            zh=note.zh if stated else f"本产品{NOT_GUARANTEED_RENEWAL}。{note.zh}",
            en=(note.en or note.zh)
            if stated and note.en
            else f"Renewal is not guaranteed. {note.en or note.zh}",
        )
    return Disclosure(
        "renewal",
        text,
        emphasis=product.short_term and product.line in HEALTH_LINES,
        rule="R8",
    )


def _health_disclosure() -> Disclosure:
    return Disclosure(
        "health_disclosure",
        I18nText(
            zh="请您如实回答健康告知问题。故意或因重大过失未如实告知，足以影响本公司决定是否同意"
            "承保或提高保险费率的，本公司有权解除合同，并可能对合同解除前发生的保险事故不承担"
            "赔偿或给付保险金的责任。",
            en="Answer the health questions truthfully. If you deliberately or through gross "
            "negligence fail to disclose facts that would affect whether the insurer accepts "
            "the risk or the premium, the insurer may cancel the policy and may refuse claims "
            "for events before the cancellation.",
        ),
        emphasis=True,
        rule="R5",
    )


def _surrender(product: Product) -> Disclosure:
    assert product.cash_values is not None
    rows_zh = "，".join(
        f"第{r.policy_year}年末{yuan(r.value_fen)}元" for r in product.cash_values.rows
    )
    rows_en = ", ".join(
        f"year {r.policy_year}: {yuan(r.value_fen)} yuan" for r in product.cash_values.rows
    )
    surrender = product.surrender
    return Disclosure(
        "surrender",
        I18nText(
            zh="犹豫期后解除合同（退保）会遭受一定损失：本公司退还保单的现金价值，"
            f"可能低于您已交的保险费。{surrender.conditions.zh}"
            f"现金价值示例（{product.cash_values.basis.zh}）：{rows_zh}。"
            f"退保申请材料齐全后{surrender.processing_days}日内退款。",
            en="Cancelling after the cooling-off period may lose you money: the insurer pays "
            "the policy's cash value, which may be less than the premiums you paid. "
            f"{surrender.conditions.en or surrender.conditions.zh} Cash values "
            f"({product.cash_values.basis.en or product.cash_values.basis.zh}): {rows_en}. "
            f"Refunds are paid within {surrender.processing_days} days of a complete "
            "application.",
        ),
        emphasis=True,
        rule="R17",
    )


def _claims(product: Product) -> Disclosure:
    procedure = product.terms.claims_procedure
    return Disclosure(
        "claims",
        I18nText(
            zh=f"理赔流程：{procedure.zh}",
            en=f"Claims: {procedure.en or procedure.zh}",
        ),
        emphasis=False,
        rule="R5",
    )


def _service(insurer: Insurer) -> Disclosure:
    channel = insurer.complaint_channel
    return Disclosure(
        "service",
        I18nText(
            zh=f"{insurer.legal_name.zh}客服电话：{insurer.service_phone}。投诉渠道：{channel.zh}",
            en=f"{insurer.legal_name.en or insurer.legal_name.zh} service phone: "
            f"{insurer.service_phone}. Complaints: {channel.en or channel.zh}",
        ),
        emphasis=False,
        rule="R5",
    )


def disclosures_for(product: Product, insurer: Insurer) -> list[Disclosure]:
    """Every prompt the buyer sees for ``product``, in the order they are shown."""
    if insurer.code != product.insurer:
        raise ValueError(f"product {product.code} is underwritten by {product.insurer}")
    out = [_is_insurance(product, insurer)]
    if product.uncertain_benefits:
        out.append(_uncertain_benefits(product))
    out.append(_exclusions(product))
    if product.waiting_period_days > 0:
        out.append(_waiting_period(product))
    if product.cooling_off_days > 0:
        out.append(_cooling_off(product))
    if product.grace_period_days > 0:
        out.append(_grace_period(product))
    out.append(_renewal(product))
    if product.health_questions:
        out.append(_health_disclosure())
    if product.cash_values is not None:
        out.append(_surrender(product))
    out.append(_claims(product))
    out.append(_service(insurer))
    out.extend(
        Disclosure(f"extra_{n}", text, emphasis=False, rule="R5")
        for n, text in enumerate(product.extra_disclosures, start=1)
    )
    return out


__all__ = [
    "UNCERTAINTY_STATEMENT",
    "UNCERTAINTY_STATEMENT_EN",
    "Disclosure",
    "disclosures_for",
]
