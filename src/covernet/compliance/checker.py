"""Marketing-text compliance checker (R2, R4, R7, R12, R23–R27).

Pure functions: no database, no network.  The rules live in ``catalog/rules/marketing.yaml``
and are loaded with :func:`load_rules`; :func:`check` applies them to one text.

Texts are matched after :func:`normalize`: NFKC (full-width to half-width), traditional to
simplified for the characters the rules use, Latin lower-cased, and spaces, punctuation,
symbols, emoji and zero-width characters removed, so that evasions such as ``稳*赚``,
``保 本``, ``穩賺`` or ``ｎｏ．１`` still match.  Every normalized character remembers the
index of the original character it came from, so findings point at the original span.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from covernet.catalog.spec import Product
from covernet.core.errors import ValidationFailed

Severity = Literal["fail", "review"]
Verdict = Literal["pass", "review", "fail"]
StructuralName = Literal[
    "says_insurance", "advisor_identity", "uncertainty_statement", "stop_sale_hype", "catalog_names"
]

# Kinds of text that are promotions shown without the advisor present (R2).
IDENTITY_KINDS = frozenset({"post", "moments", "live_script", "group_message"})

# Traditional -> simplified for the characters marketing rules use (pairs, one per column).
_TRAD = (
    "險穩賺證無風錢現銀儲終價後會機費賠貸單從業報絕對區號專實確擔與這個們來時說產買賣"
    "國際優獲獎勵紅領禮點傭還為萬當額頭劃壽醫療財車嗎麼關開線網顧問師戶貨幣幾讓級頂強"
    "歲數標準權紀錄盡據擇選過樣給積極讚護蓋漲馬隨瞞隱狀鬥稅債約團門僅監總於裡體舊換辦"
    "條贈聯雙倍僱傷殘殺災難診斷癥藥療歸齡齊餘額準並虧損賬戶證書營銷騙詐謹慎詢諮獨訂淨"
    "後塊東囉啟動務處齡寶媽爺滿趕緊搶純撿漏錯邊週週鐘點節熱氣樂聽講課線鏈結轉發圈紅"
)
_SIMP = (
    "险稳赚证无风钱现银储终价后会机费赔贷单从业报绝对区号专实确担与这个们来时说产买卖"
    "国际优获奖励红领礼点佣还为万当额头划寿医疗财车吗么关开线网顾问师户货币几让级顶强"
    "岁数标准权纪录尽据择选过样给积极赞护盖涨马随瞒隐状斗税债约团门仅监总于里体旧换办"
    "条赠联双倍雇伤残杀灾难诊断症药疗归龄齐余额准并亏损账户证书营销骗诈谨慎询咨独订净"
    "后块东啰启动务处龄宝妈爷满赶紧抢纯捡漏错边周周钟点节热气乐听讲课线链结转发圈红"
)
TRAD_TO_SIMP: dict[str, str] = dict(zip(_TRAD, _SIMP, strict=True))
TRAD_TO_SIMP.update({"裏": "里", "沒": "没", "於": "于", "聖": "圣", "劵": "券", "卻": "却"})

# Unicode categories dropped by normalize: punctuation, separators, symbols (emoji),
# control/format (zero-width) and combining marks (emoji variation selectors).
_DROP_CATEGORIES = ("P", "Z", "S", "C", "M")

# A hit closely preceded by one of these is a disclaimer, not a claim (本产品不保本).
_NEGATION = re.compile(
    r"(不是|并非|(?<!常)非(?!常)|不承诺|不保证|不等于|不代表|不能|不得|不可|不应|切勿|勿|谨防|"
    r"警惕|不要|千万别|(?<!特)别把|区别于|不同于|而非|并不|不属于|没有所谓|不存在|拒绝|杜绝|"
    r"严禁|禁止|请勿|远离|谨慎对待|任何|号称|所谓|不[发送搞做返给设抽])"
)
_NEGATION_WINDOW = 6

_INSURANCE_WORD = re.compile(
    r"保险|(意外|医疗|重疾|寿|年金|分红|万能|投连|财产|旅行|延误|运费|安全|防癌|惠民|护理|两全)险"
)
_UNCERTAIN_TEXT = re.compile(r"分红型|分红险|万能型|万能险|投连|投资连结|分红保险|万能保险")
# A product name quoted in the original text: 「…保险…」, 《…保险…》, “…保险…”.
_QUOTED_PRODUCT = re.compile(
    r"[「《“『\"]([^」》”』\"\n]{0,30}?保险[^」》”』\"\n]{0,12})[」》”』\"]"
)
_UNCERTAINTY_STATEMENT = re.compile(r"不确定|不保证|非保证")


def _norm_char(ch: str) -> str:
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if unicodedata.category(c)[0] in _DROP_CATEGORIES:
            continue
        out.append(TRAD_TO_SIMP.get(c, c).lower())
    return "".join(out)


def normalize(text: str) -> tuple[str, list[int]]:
    """Return the normalized text and, for each of its characters, the original index."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for c in _norm_char(ch):
            chars.append(c)
            index.append(i)
    return "".join(chars), index


# Rules -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(_Model):
    id: str = Field(pattern=r"^R\d+\.[a-z_]+$")
    rule: str = Field(pattern=r"^R\d+$")
    severity: Severity
    severity_if_uncertain: Severity | None = None
    citation: str = Field(min_length=1)
    suggestion: str = Field(min_length=1)
    phrases: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    structural: StructuralName | None = None
    negatable: bool = True

    @field_validator("phrases")
    @classmethod
    def _phrases_normalize(cls, value: list[str]) -> list[str]:
        for phrase in value:
            if not normalize(phrase)[0]:
                raise ValueError(f"phrase {phrase!r} is empty once normalized")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if not self.id.startswith(self.rule + "."):
            raise ValueError(f"rule {self.id}: id must start with {self.rule}.")
        has_text = bool(self.phrases or self.patterns)
        if has_text == (self.structural is not None):
            raise ValueError(
                f"rule {self.id}: give phrases/patterns or structural, exactly one of them"
            )
        for pattern in self.patterns:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rule {self.id}: bad pattern {pattern!r}: {exc}") from exc
            if compiled.search(""):
                raise ValueError(f"rule {self.id}: pattern {pattern!r} matches empty text")
        return self

    def compiled(self) -> list[re.Pattern[str]]:
        parts = [re.escape(normalize(p)[0]) for p in self.phrases]
        return [re.compile(p) for p in parts + list(self.patterns)]


class RuleSet(_Model):
    version: int = Field(ge=1)
    rules: list[Rule] = Field(min_length=1)
    _compiled: list[tuple[Rule, list[re.Pattern[str]]]] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: object, /) -> None:
        self._compiled = [(r, r.compiled()) for r in self.rules if r.structural is None]

    def text_rules(self) -> list[tuple[Rule, list[re.Pattern[str]]]]:
        """Phrase/pattern rules with their compiled regexes (compiled once, at load)."""
        return self._compiled

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids repeat: {dupes}")
        return self

    def structural(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.structural == name), None)


def load_rules(path: Path | str) -> RuleSet:
    """Load and validate a rule set; raise ValidationFailed naming the broken rule."""
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{path}: not valid YAML: {exc}", code="bad_rules") from exc
    return parse_rules(data, source=str(path))


def parse_rules(data: object, *, source: str = "rules") -> RuleSet:
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = err["loc"]
            rule_id = None
            if len(where) >= 2 and where[0] == "rules" and isinstance(where[1], int):
                rules = data.get("rules") if isinstance(data, dict) else None
                if isinstance(rules, list) and where[1] < len(rules):
                    item = rules[where[1]]
                    rule_id = item.get("id") if isinstance(item, dict) else None
            label = f"rule {rule_id}" if rule_id else ".".join(str(p) for p in where)
            problems.append(f"{label}: {err['msg']}")
        raise ValidationFailed(
            f"{source}: " + "; ".join(problems), code="bad_rules", detail=problems
        ) from exc


# Checking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvisorIdentity:
    name: str
    institution: str
    license_no: str


class Finding(_Model):
    rule_id: str
    rule: str
    severity: Severity
    span: tuple[int, int] = Field(description="[start, end) in the original text")
    excerpt: str
    citation: str
    suggestion: str
    message: str = ""


class CheckResult(_Model):
    verdict: Verdict
    findings: list[Finding]

    @property
    def rule_ids(self) -> set[str]:
        return {f.rule_id for f in self.findings}


def _negated(norm: str, start: int) -> bool:
    if start > 0 and norm[start - 1] == "不":
        return True
    window = norm[max(0, start - _NEGATION_WINDOW) : start]
    return bool(_NEGATION.search(window))


def _finding(
    rule: Rule,
    severity: Severity,
    text: str,
    span: tuple[int, int],
    message: str = "",
) -> Finding:
    return Finding(
        rule_id=rule.id,
        rule=rule.rule,
        severity=severity,
        span=span,
        excerpt=text[span[0] : span[1]],
        citation=rule.citation,
        suggestion=rule.suggestion,
        message=message,
    )


def check(
    text: str,
    *,
    kind: str = "post",
    products: Sequence[Product] = (),
    advisor: AdvisorIdentity | None = None,
    rules: RuleSet,
    catalog_names: Collection[str] | None = None,
) -> CheckResult:
    """Check one marketing text against the rule set.

    ``kind`` is the channel (post, moments, live_script, group_message need the advisor's
    identity, R2); ``products`` are the catalog products the text promotes; ``catalog_names``,
    when given, are the names of every product on sale, so quoted product names not among
    them can be flagged.
    """
    norm, index = normalize(text)
    whole = (0, len(text))
    uncertain = any(p.uncertain_benefits for p in products) or bool(_UNCERTAIN_TEXT.search(norm))
    stop_sale_published = rules.structural("stop_sale_hype") is not None and any(
        p.sale.stop_date is not None for p in products
    )
    findings: list[Finding] = []
    for rule, patterns in rules.text_rules():
        if rule.rule == "R25" and stop_sale_published:
            continue
        severity: Severity = (
            rule.severity_if_uncertain
            if uncertain and rule.severity_if_uncertain is not None
            else rule.severity
        )
        hits = {
            (m.start(), m.end())
            for pattern in patterns
            for m in pattern.finditer(norm)
            if m.end() > m.start() and not (rule.negatable and _negated(norm, m.start()))
        }
        # Longest hits first, so 大额存单 is reported once rather than as 存单.
        taken: list[tuple[int, int]] = []
        for s, e in sorted(hits, key=lambda h: (h[0] - h[1], h[0])):
            if not any(s < te and ts < e for ts, te in taken):
                taken.append((s, e))
        for s, e in sorted(taken):
            findings.append(_finding(rule, severity, text, (index[s], index[e - 1] + 1)))

    says = rules.structural("says_insurance")
    if says is not None and products and not _INSURANCE_WORD.search(norm):
        findings.append(_finding(says, says.severity, text, whole, "推介产品但未说明这是保险"))

    ident = rules.structural("advisor_identity")
    if ident is not None and advisor is not None and kind in IDENTITY_KINDS:
        missing = [
            label
            for label, value in (
                ("姓名", advisor.name),
                ("机构全称", advisor.institution),
                ("执业证编号", advisor.license_no),
            )
            if normalize(value)[0] not in norm
        ]
        if missing:
            findings.append(
                _finding(ident, ident.severity, text, whole, "缺少销售人员" + "、".join(missing))
            )

    unc = rules.structural("uncertainty_statement")
    if (
        unc is not None
        and any(p.uncertain_benefits for p in products)
        and not _UNCERTAINTY_STATEMENT.search(norm)
    ):
        findings.append(
            _finding(unc, unc.severity, text, whole, "分红/万能/投连产品未提示保单利益不确定")
        )

    names = rules.structural("catalog_names")
    if names is not None and catalog_names is not None:
        known = [normalize(n)[0] for n in catalog_names]
        for m in _QUOTED_PRODUCT.finditer(text):
            quoted = normalize(m.group(1))[0]
            if not any(k.startswith(quoted) or quoted.startswith(k) for k in known):
                findings.append(
                    _finding(
                        names,
                        names.severity,
                        text,
                        (m.start(1), m.end(1)),
                        f"产品“{m.group(1)}”不在产品目录中",
                    )
                )

    findings.sort(key=lambda f: (f.span, f.rule_id))
    verdict: Verdict = (
        "fail" if any(f.severity == "fail" for f in findings) else "review" if findings else "pass"
    )
    return CheckResult(verdict=verdict, findings=findings)
