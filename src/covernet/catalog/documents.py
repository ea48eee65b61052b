"""The documents a buyer reads and confirms before buying (R5, R13, R28, R29).

Each document is derived from one product version and carries a content hash; the buyer
confirms a document by sending back its hash, so the sale's record (可回溯) proves which
text was shown.  Pure: no database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from covernet.catalog.disclosures import Disclosure
from covernet.catalog.spec import Product
from covernet.core.i18n_text import I18nText

PRIVACY_NOTICE = I18nText(
    zh="个人信息处理告知：为订立和履行保险合同，我们处理您和被保险人的姓名、身份证件号码、"
    "手机号码、健康告知和支付信息，并提供给承保保险公司用于核保、出单、理赔和客户服务。"
    "保单有关信息按法律规定保存至合同终止后至少5年（一年期以上保险至少10年），期满删除或"
    "匿名化。您可以查阅、复制、更正、删除您的个人信息，也可以撤回同意（不影响撤回前的处理），"
    "但撤回处理合同必需的信息可能导致无法继续投保或服务。",
    en="How we process personal data: to make and perform the insurance contract we process the "
    "applicant's and the insured's names, ID numbers, mobile numbers, health answers and payment "
    "details, and share them with the insurer for underwriting, issuing, claims and service. "
    "Policy records are kept at least 5 years after the contract ends (10 years for cover over "
    "one year), then deleted or anonymised. You may access, copy, correct or delete your data "
    "and withdraw consent (which does not affect earlier processing); withdrawing data the "
    "contract needs may mean we cannot go on.",
)
SENSITIVE_NOTICE = I18nText(
    zh="敏感个人信息单独同意：身份证件号码、健康信息和银行账户属于敏感个人信息。处理它们是"
    "核保、出单和理赔所必需的；未满十四周岁的被保险人，由其监护人同意。我们加密保存，"
    "只用于本保险合同。",
    en="Separate consent for sensitive data: ID numbers, health information and bank accounts "
    "are sensitive personal data. Processing them is necessary for underwriting, issuing and "
    "claims; for an insured under 14 the guardian consents. They are stored encrypted and used "
    "only for this contract.",
)


@dataclass(frozen=True)
class SaleDocument:
    code: str  # terms | exclusions | disclosures | health_notice | privacy | sensitive_data
    title: I18nText
    paragraphs: tuple[I18nText, ...]
    content_hash: str

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "title": self.title.model_dump(),
            "paragraphs": [p.model_dump() for p in self.paragraphs],
            "content_hash": self.content_hash,
        }


def _doc(code: str, title: I18nText, paragraphs: list[I18nText]) -> SaleDocument:
    canonical = json.dumps(
        [code, title.model_dump(), [p.model_dump() for p in paragraphs]],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return SaleDocument(
        code, title, tuple(paragraphs), hashlib.sha256(canonical.encode()).hexdigest()
    )


def sale_documents(product: Product, disclosures: tuple[Disclosure, ...]) -> list[SaleDocument]:
    """The documents of one product version, in the order the purchase flow shows them."""
    docs = [
        _doc(
            "terms",
            I18nText(zh="保险条款重要内容", en="Key policy terms"),
            [product.terms.summary, *product.terms.clauses],
        ),
        _doc(
            "exclusions",
            I18nText(zh="责任免除", en="Exclusions"),
            list(product.terms.exclusions),
        ),
        _doc(
            "disclosures",
            I18nText(zh="投保提示书", en="Application notice"),
            [d.text for d in disclosures],
        ),
    ]
    if product.health_questions:
        docs.append(
            _doc(
                "health_notice",
                I18nText(zh="健康告知", en="Health questions"),
                [q.text for q in product.health_questions],
            )
        )
    docs.append(
        _doc("privacy", I18nText(zh="个人信息处理告知", en="Privacy notice"), [PRIVACY_NOTICE])
    )
    docs.append(
        _doc(
            "sensitive_data",
            I18nText(zh="敏感个人信息处理同意", en="Sensitive personal data"),
            [SENSITIVE_NOTICE],
        )
    )
    return docs
