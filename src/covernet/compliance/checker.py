"""Marketing-text compliance checker (R2, R4, R7, R12, R23–R27).

Pure functions: no database, no network.  The rules live in ``catalog/rules/marketing.yaml``
and are loaded with :func:`load_rules`; :func:`check` applies them to one text.

Texts are matched after :func:`normalize`: NFKC (full-width to half-width), traditional to
simplified for the characters the rules use, Latin lower-cased, and spaces, punctuation,
symbols, emoji and zero-width characters removed, so that evasions such as ``稳*赚``,
``保 本``, ``穩賺`` or ``ｎｏ．１`` still match.  ``%`` and a decimal point between digits
are kept (``理赔率99.5%``).  Every normalized character remembers the index of the original
character it came from, so findings point at the original span.

A hit of a ``negatable`` rule is dropped when it is negated or disclaimed: a weak marker
(非, 任何, 所谓, 不返…) just before it, a strong negation or warning (不是, 不要, 不存在, 谨防,
不会说…) anywhere earlier in its clause and after the last contrast word (而是, 但…), or a
verdict on it afterwards (…的都是违规的; …，这是误导; a closing …，别被误导).  Clauses end at
，。！？；, so 不是最便宜，而是最划算 still flags 最划算.

Before the rules run, the rule set's ``aliases`` rewrite pinyin initials and syllables and
homophones (gj → 国家, 下jia → 下架, t保 → 退保, 亭售 → 停售), keeping each character's
original index.  A hit is also dropped when it is a word talked about rather than a claim:
followed by 这种词/这些说法/的话术, or inside quotation marks in a text that warns or negates
outside them (“第一”“最好”…不能说).  A rule's ``literal`` entries drop a trigger word used
literally (地铁末班车, 过年发红包, 天花板漏水, 房贷利息), its ``allowed_by_terms`` the hits a
promoted product's own surrender terms allow (退货运费险 refunds in full before dispatch), and
R25's ``despite_stop_notice`` patterns stay hype even with a published stop date (手慢无).

A rule's ``unless`` patterns cancel a hit when one of them matches near it (within
``unless_window`` normalized characters either side; 0 = anywhere in the text), e.g. a
statistic with ``数据来源`` or ``据…统计`` next to it.  The structural check
``catalog_prices`` compares premiums and sums insured stated in the text with the promoted
products' premium tables and plans: number words count as digits (一年六十块), 5000出头 and
5000多 as a range, and an age or sex the text names (40岁, 30岁男士) picks the premium rows.
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
    "says_insurance",
    "advisor_identity",
    "uncertainty_statement",
    "stop_sale_hype",
    "catalog_names",
    "catalog_prices",
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
_TRAD_MORE = (
    "將達購維閒話訴請細閱讀責別統計億兌補貼變觀",
    "将达购维闲话诉请细阅读责别统计亿兑补贴变观",
)
TRAD_TO_SIMP.update(zip(*_TRAD_MORE, strict=True))

# Unicode categories dropped by normalize: punctuation, separators, symbols (emoji),
# control/format (zero-width) and combining marks (emoji variation selectors).
_DROP_CATEGORIES = ("P", "Z", "S", "C", "M")

# Negation and disclaimer scope.  A hit is not a claim when
# * it is closely preceded (within _NEGATION_WINDOW normalized characters of the same clause)
#   by a weak marker such as 非, 任何, 所谓, 号称 or 不发/不返 (本产品非存款, 没有任何返现);
# * a strong negation or warning stands anywhere earlier in its clause, after the last
#   contrast word (不要把保险当成储蓄; 我不会说它是最便宜的; but 不是最便宜而是最划算 keeps
#   最划算): the clause runs back to the previous ，。！？；;
# * it is followed in its clause by a verdict on it (…的都是违规的, 隐瞒病史可能被拒赔), or the
#   text ends with a warning clause (…，别被误导; …，大家别信): reported speech.
# A negation that urges (不要错过, 别犹豫, 千万别等) negates nothing.
_NEGATION = re.compile(
    r"(不是|并非|(?<!常)非(?!常)|不承诺|不保证|不等于|不代表|不能|不得|不可(?!抗辩)|不应|切勿|"
    r"勿|谨防|警惕|不要|千万别|(?<!特)别把|区别于|不同于|而非|并不|不属于|没有所谓|不存在|"
    r"拒绝|杜绝|严禁|禁止|请勿|远离|谨慎对待|任何|号称|所谓|没有|不[发送搞做返给设抽]|"
    # An A-not-A question asks, it does not claim: 是不是稳赚, 会不会亏.
    r"是不是|会不会|能不能|可不可以|算不算)"
)
_NEGATION_WINDOW = 6
_CLAUSE_NEGATION = re.compile(
    r"(不是|并非|并不|绝非|不存在|没有所谓|不会说|不敢说|不能说|不说|不吹|谈不上|称不上|算不上|不涉及|"
    r"不承诺|不保证|不代表|不等于|不提供|不建议|不推荐|不支持|不允许|不得|不能(?!拒赔)|"
    r"不可以|不可(?!抗辩)|不应|不该|不要|千万别|请勿|切勿|严禁|禁止|谨防|警惕|提防|远离|"
    r"杜绝|拒绝|听信|不要相信|别信|不信|防范|被(忽悠|骗|诱导|误导|坑|套路|洗脑)|谁说|谁告诉你|打着|"
    r"(?<!不)小心|当心|"
    r"(?<![特区分级类性告个识差鉴辨])别(?![的人家处样致名称扭针墅]))"
)
# Words after a negation that make it an urging, not a denial.
_URGING = re.compile(r"错过|犹豫|再等|等了|等啦|担心|怕|纠结|观望|拖|迟疑|后悔|磨蹭|想了|墨迹|慌")
# A contrast word ends the reach of an earlier negation: 不是最便宜，而是最划算.
_CONTRAST = re.compile(r"而是|但是|但|可是|不过|反而|却")
# A verdict after the hit in its clause: the hit is what someone else says.
_VERDICT_AFTER = re.compile(
    r"(都|全|就|也)?(是|属于|算)(违规|违法|骗局|骗人|诈骗|假的|虚假|误导|套路|谣言|忽悠|坑)|"
    r"(可能|会|将)(会)?(被|导致|造成|引起)?(拒赔|解除合同|不赔)|导致拒赔|不可信|不靠谱|"
    r"别信|不要信|别上当|不要上当|(完全|根本|是)?(不同|不一样|两回事|两码事)|"
    r"(要|需|需要|请|务必|一定要)(慎重|谨慎|三思|想清楚)|骗子|别当真|不要当真|不可信|"
    r"(直接|请|就|快)?(拉黑|举报|绕道|快跑|报警)|(往往|通常|总是|必然)?(伴随|意味着|对应)着?(高|更高的?)?风险|(只能|只会)?(拿回|退还?|返还|拿到)的?(是|只有)?现金价值"
)
# A next clause that flatly denies the hit: 手慢无？不存在的.
_NEXT_DENIAL = re.compile(
    r"(不存在的|没有的事|才怪|胡扯|瞎扯|胡说八道|扯淡|想多了|假的)(哈|哦|啊|呀)?"
)
# A verdict opening the next clause: 有人说国家会兜底，这是误导.
_NEXT_VERDICT = re.compile(
    r"(这|那|这些|那些|这种|这个|这类|此类|这样)?(说法|话|种话)?(都|全|就|也|纯属|纯粹)?"
    r"(是|属于|算)?(违规|违法|骗局|骗人|诈骗|假的|虚假宣传|误导|套路|谣言|忽悠|坑人)"
)
# A closing warning clause that makes the whole text a warning.
_CLOSING_WARNING = re.compile(
    r"(大家|请|千万|一定)*(别|不要|切勿|勿|谨防|警惕)(再)?(被.{0,8})?"
    r"(误导|忽悠|骗|上当|信|轻信|相信|听信|带节奏)了?(哦|哈|啊|呀)?|"
    r"(大家|请|千万|一定|都)*要?(警惕|谨防|当心|小心|提防|注意甄别|擦亮眼睛)(哦|哈|啊|呀)?"
)
_CLAUSE_MARKS = frozenset("，,。！!？?；;\n…")

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


_KEPT = frozenset("%‰")


def normalize(text: str) -> tuple[str, list[int]]:
    """Return the normalized text and, for each of its characters, the original index."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        folded = unicodedata.normalize("NFKC", ch)
        if folded in _KEPT or (
            folded == "."
            and chars
            and chars[-1].isdigit()
            and i + 1 < len(text)
            and unicodedata.normalize("NFKC", text[i + 1])[:1].isdigit()
        ):
            chars.append(folded)
            index.append(i)
            continue
        for c in _norm_char(ch):
            chars.append(c)
            index.append(i)
    return "".join(chars), index


# Rules -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LiteralUse(_Model):
    """A trigger word used literally: 地铁末班车, 过年发红包, 天花板漏水, 房贷利息.

    A hit containing ``word`` is dropped when ``context`` matches within ``window``
    normalized characters of it, unless ``not_with`` (a sale word) matches there too.
    """

    word: str = Field(min_length=1)
    context: str = Field(min_length=1)
    not_with: str | None = None
    window: int = Field(default=10, ge=1)


class TermsAllowance(_Model):
    """Hits (matching ``hit``) that the promoted product's own surrender terms allow.

    退货运费险 refunds the premium in full before dispatch and 航班延误险 before take-off, so
    saying so is not a 全额退保 promise when one of the promoted products' surrender
    conditions matches ``terms``.
    """

    hit: str = Field(min_length=1)
    terms: str = Field(min_length=1)


class Alias(_Model):
    """A spelling rewritten before matching: pinyin initials (gj), syllables (下jia), homophones."""

    match: str = Field(min_length=1)
    to: str = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad alias {value!r}: {exc}") from exc
        if compiled.search(""):
            raise ValueError(f"alias {value!r} matches empty text")
        return value


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
    unless: list[str] = Field(
        default_factory=list, description="patterns that cancel a hit found near them"
    )
    unless_window: int = Field(default=12, ge=0, description="0: anywhere in the text")
    literal: list[LiteralUse] = Field(
        default_factory=list, description="contexts in which a trigger word means what it says"
    )
    despite_stop_notice: list[str] = Field(
        default_factory=list,
        description="patterns that are hype even for a product with a published stop date",
    )
    allowed_by_terms: TermsAllowance | None = Field(
        default=None, description="hits the promoted product's own surrender terms allow"
    )

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
        extra = list(self.unless) + list(self.despite_stop_notice)
        for lit in self.literal:
            extra += [lit.word, lit.context] + ([lit.not_with] if lit.not_with else [])
        if self.allowed_by_terms is not None:
            extra += [self.allowed_by_terms.hit, self.allowed_by_terms.terms]
        for pattern in extra:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rule {self.id}: bad pattern {pattern!r}: {exc}") from exc
        return self

    def compiled(self, ruleset: RuleSet | None = None) -> list[re.Pattern[str]]:
        def norm(phrase: str) -> str:
            folded = normalize(phrase)
            return ruleset.unalias(*folded)[0] if ruleset is not None else folded[0]

        parts = [re.escape(norm(p)) for p in self.phrases]
        return [re.compile(p) for p in parts + list(self.patterns)]

    def compiled_unless(self) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p})" for p in self.unless)) if self.unless else None


class RuleSet(_Model):
    version: int = Field(ge=1)
    aliases: list[Alias] = Field(default_factory=list)
    rules: list[Rule] = Field(min_length=1)
    _compiled: list[tuple[Rule, list[re.Pattern[str]]]] = PrivateAttr(default_factory=list)
    _unless: dict[str, re.Pattern[str]] = PrivateAttr(default_factory=dict)

    _aliases: list[tuple[re.Pattern[str], str]] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: object, /) -> None:
        self._aliases = [(re.compile(a.match), a.to) for a in self.aliases]
        self._compiled = [(r, r.compiled(self)) for r in self.rules if r.structural is None]
        self._unless = {r.id: u for r in self.rules if (u := r.compiled_unless()) is not None}

    def unalias(self, norm: str, index: list[int]) -> tuple[str, list[int]]:
        """Rewrite aliases (gj → 国家, 下jia → 下架, t保 → 退保) in a normalized text.

        Each rewritten character keeps an original index: the first ones the match's first
        character, the last one the match's last character, so spans still cover the alias.
        """
        for pattern, to in self._aliases:
            if pattern.search(norm) is None:
                continue
            out: list[str] = []
            where: list[int] = []
            pos = 0
            for m in pattern.finditer(norm):
                if m.end() == m.start():
                    continue
                out.append(norm[pos : m.start()])
                where.extend(index[pos : m.start()])
                out.append(to)
                where.extend([index[m.start()]] * (len(to) - 1) + [index[m.end() - 1]])
                pos = m.end()
            out.append(norm[pos:])
            where.extend(index[pos:])
            norm, index = "".join(out), where
        return norm, index

    def text_rules(self) -> list[tuple[Rule, list[re.Pattern[str]]]]:
        """Phrase/pattern rules with their compiled regexes (compiled once, at load)."""
        return self._compiled

    def unless(self, rule: Rule) -> re.Pattern[str] | None:
        """The rule's cancelling patterns as one compiled regex, if it has any."""
        return self._unless.get(rule.id)

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


def _clauses(text: str, index: list[int]) -> tuple[list[int], list[int]]:
    """For each normalized position, where its clause starts and ends (normalized positions).

    Clauses end at ，。！？；(full- or half-width), a line break or an ellipsis.
    """
    starts: list[int] = []
    current = 0
    for i in range(len(index)):
        if i and any(c in _CLAUSE_MARKS for c in text[index[i - 1] + 1 : index[i]]):
            current = i
        starts.append(current)
    ends = [0] * len(index)
    end = len(index)
    for i in range(len(index) - 1, -1, -1):
        ends[i] = end
        if starts[i] == i:
            end = i
    return starts, ends


def _negating(pattern: re.Pattern[str], norm: str, lo: int, hi: int) -> bool:
    return any(_URGING.match(norm, m.end()) is None for m in pattern.finditer(norm, lo, hi))


def _negated(norm: str, start: int, end: int, starts: list[int], ends: list[int]) -> bool:
    if start > 0 and norm[start - 1] == "不":
        return True
    if norm[start] == "不" and 0 < start < len(norm) - 1 and norm[start - 1] == norm[start + 1]:
        return True  # 会不会亏: a question
    if _following_denied(norm, end, ends):
        return True
    clause = starts[start]
    if _negating(_NEGATION, norm, max(clause, start - _NEGATION_WINDOW), start):
        return True
    scope = clause
    for m in _CONTRAST.finditer(norm, clause, start):
        scope = m.end()
    if _negating(_CLAUSE_NEGATION, norm, scope, start):
        return True
    if _VERDICT_AFTER.search(norm, end, ends[end - 1]):
        return True
    following = ends[end - 1]
    if following < len(norm) and _NEXT_VERDICT.match(norm, following) is not None:
        return True
    last = starts[-1]
    return last > start and _CLOSING_WARNING.fullmatch(norm, last) is not None


def _literal(uses: Sequence[LiteralUse], norm: str, hit: tuple[int, int]) -> bool:
    """Whether the hit is a trigger word used literally (地铁末班车, 过年发红包, 房贷利息)."""
    for use in uses:
        if re.search(use.word, norm[hit[0] : hit[1]]) is None:
            continue
        near = norm[max(0, hit[0] - use.window) : hit[1] + use.window]
        if re.search(use.context, near) and not (use.not_with and re.search(use.not_with, near)):
            return True
    return False


# Words quoted or listed in order to talk about them: “第一”“最好”这种词…不能说; 利息、本金这些词….
_MENTION_AFTER = re.compile(
    r".{0,12}?((这种|这些|这类|这样的|此类|之类的?|一类的?|等等?)(词|字眼|说法|话术|话|用语|表述|"
    r"宣传|字|概念|承诺|广告|套路|口号|标语)|的(说法|话术|字眼|用语|宣传语|广告语|表述|套路))"
)
_QUOTE = re.compile(
    r"“[^”\n]{1,40}”|\"[^\"\n]{1,40}\"|「[^」\n]{1,40}」|『[^』\n]{1,40}』|‘[^’\n]{1,40}’"
)


class _Mentions:
    """Hits that are words talked about rather than claims made.

    A hit followed in its clause by 这种词/这些说法/的话术 is a mention; so is a hit inside
    quotation marks when the text outside the quotes warns or negates (不能说, 别信, 是假的).
    """

    def __init__(self, text: str, norm: str, index: list[int], ends: list[int]) -> None:
        self.norm = norm
        self.index = index
        self.ends = ends
        self.quoted = [(m.start() + 1, m.end() - 1) for m in _QUOTE.finditer(text)]
        inside = {i for lo, hi in self.quoted for i in range(lo, hi)}
        outside = "".join(c for c, i in zip(norm, index, strict=True) if i not in inside)
        self.warned = bool(self.quoted) and bool(
            _negating(_CLAUSE_NEGATION, outside, 0, len(outside))
            or _VERDICT_AFTER.search(outside)
            or _NEXT_VERDICT.search(outside)
            or _MENTION_AFTER.search(outside)
        )

    def mentioned(self, start: int, end: int) -> bool:
        if _MENTION_AFTER.match(self.norm, end, self.ends[end - 1]) is not None:
            return True
        if not self.warned:
            return False
        lo, hi = self.index[start], self.index[end - 1] + 1
        return any(qlo <= lo and hi <= qhi for qlo, qhi in self.quoted)


def _following_denied(norm: str, end: int, ends: list[int]) -> bool:
    following = ends[end - 1]
    return following < len(norm) and (
        _NEXT_DENIAL.fullmatch(norm, following, ends[following]) is not None
    )


def _cancelled(cancel: re.Pattern[str], norm: str, hit: tuple[int, int], window: int) -> bool:
    if window == 0:
        return cancel.search(norm) is not None
    return cancel.search(norm[max(0, hit[0] - window) : hit[1] + window]) is not None


# Prices stated in a text (R23.catalog_prices) -------------------------------------------

_NUM = r"(?P<n>\d+(?:\.\d+)?)"
# 5000多, 5000出头 (a little above), 60来块, 5000左右 (about).
_APPROX = r"(?P<approx>多|出头|来|左右)?"
# Not a premium: a deductible or threshold (每次500元免赔额), or a count (每年5000人).
_NOT_PREMIUM = r"(?!的?(?:年)?(?:免赔|起付)|[\d.万千百岁天年次个份人%位名周倍])"
_PERIOD_WORDS = r"每个?月|一个月|月[缴交]|每年|一年|年[缴交]|每段|每单|每次|每份|每人|首年|保费"
# 每月5元 / 一年只要60元 / 只要5块 / 保费¥16 / 每年交5000 / 一年才5000出头
_PREMIUM_BEFORE = re.compile(
    rf"(?:(?P<period>{_PERIOD_WORDS})(?P<verb>[交缴付])?"
    rf"(?:也)?(?:只要|只需|仅需|仅|才|低至|不到|就)?|(?:也)?(?:只要|只需|仅需|低至))"
    rf"[¥￥]?{_NUM}{_APPROX}(?P<unit>元|块)?(?:钱)?{_NOT_PREMIUM}"
)
# 5元/月, ¥16/月, 16块一个月
_PREMIUM_AFTER = re.compile(
    rf"[¥￥]?{_NUM}{_APPROX}(?:元|块)?(?:钱)?(?:/|每|一个?)(?P<period>月|年)"
)
_PREMIUM_YEN = re.compile(rf"[¥￥]{_NUM}(?!\s*(?:/|每|一个?)?[月年])")
# 保额30万 / 最高赔100万 / 保30万 / 赔200元
_SUM = re.compile(
    rf"(?:保额|保障额度|保险金额|最高(?:可)?(?:赔付|赔偿|赔|报销|给付|保)|赔付|报销|赔|(?<![投承参确担])保)"
    rf"(?:高达|达|至|最高)?{_NUM}(?P<unit>万元|万|元|亿)"
)
# An annuity paid out: 每年领5000元, 领取年金2000元, 领2000元年金.
_PAYOUT = re.compile(
    rf"(?:(?:每年|每月|每个月)领(?:取)?(?:年金)?|领(?:取)?年金){_NUM}(?P<unit>万元|万|元)"
    rf"|领(?:取)?{_NUM.replace('<n>', '<n2>')}(?P<unit2>万元|万|元)的?年金"
)
_UNIT_FEN = {"元": 100, "万": 1_000_000, "万元": 1_000_000, "亿": 10_000_000_000}
# The insured's age and sex when the text names one: 40岁也只要60元, 30岁男士 (not 30岁以下).
_AGE = re.compile(
    r"(?<![\d到至~\-－])(\d{1,2})周?岁(?!以下|以上|及以下|及以上|到|至|~|-|－|前|后|之前|之后|以后|以前|起)"
)
_MALE = re.compile(r"男(?:士|性|生|宝|孩|人)")
_FEMALE = re.compile(r"(?<![子儿])女(?:士|性|生|宝|孩|人)")

# Number words before a money unit become digits: 六十块 → 60块, 一百万 → 100万.
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=(?:多|出头|来)?(?:元|块|万|亿))")


def _cn_int(words: str) -> int:
    total = digit = 0
    last_unit = 1
    for ch in words:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        else:
            last_unit = _CN_UNITS[ch]
            total += (digit or 1) * last_unit
            digit = 0
    # 三千五 is 3500: a trailing digit counts in the unit below the last one.
    return total + (digit * last_unit // 10 if last_unit > 1 and digit else digit)


def _fold_numbers(text: str) -> tuple[str, list[int]]:
    """NFKC-fold ``text`` and write number words as digits; each character's original index."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch):
            chars.append(c)
            where.append(i)
    folded = "".join(chars)
    out: list[str] = []
    index: list[int] = []
    pos = 0
    for m in _CN_NUMBER.finditer(folded):
        if not any(c in _CN_DIGITS for c in m.group()) and m.group() != "十":
            continue
        out.append(folded[pos : m.start()])
        index.extend(where[pos : m.start()])
        digits = str(_cn_int(m.group()))
        out.append(digits)
        index.extend([where[m.start()]] * (len(digits) - 1) + [where[m.end() - 1]])
        pos = m.end()
    out.append(folded[pos:])
    index.extend(where[pos:])
    return "".join(out), index


def _fen(number: str, per_unit: int) -> int:
    whole, _, frac = number.partition(".")
    value = int(whole) * per_unit
    if frac:
        value += int(frac) * per_unit // 10 ** len(frac)
    return value


@dataclass(frozen=True)
class _Figure:
    kind: Literal["premium", "sum"]
    low: int  # fen; a yearly premium is negative
    high: int
    span: tuple[int, int]
    shown: str

    def among(self, offered: set[int]) -> bool:
        if self.low == self.high:
            return self.low in offered
        return any(self.low <= o <= self.high for o in offered)


def _bounds(fen: int, number: str, approx: str | None) -> tuple[int, int]:
    """The range a figure covers: 5000出头 and 5000多 up to 6000, 60来 and 60左右 ±10%."""
    if approx in ("多", "出头"):
        whole = number.partition(".")[0]
        step = fen // int(whole) * 10 ** max(0, len(whole) - 1) if int(whole) else fen
        return fen, fen + step - 1
    if approx in ("来", "左右"):
        return fen - fen // 10, fen + fen // 10
    return fen, fen


def _stated_figures(text: str) -> list[_Figure]:
    """Each premium or sum insured the text states, with its span in the original."""
    folded, where = _fold_numbers(text)
    out: list[_Figure] = []
    seen: set[int] = set()

    def add(kind: Literal["premium", "sum"], fen: int, m: re.Match[str], group: str = "n") -> None:
        if m.start(group) in seen:
            return
        seen.add(m.start(group))
        groups = m.groupdict()
        low, high = _bounds(abs(fen), m.group(group), groups.get("approx"))
        if fen < 0:  # a yearly premium
            low, high = -high, -low
        span = (where[m.start()], where[m.end() - 1] + 1)
        out.append(_Figure(kind, low, high, span, text[span[0] : span[1]]))

    for m in _PREMIUM_BEFORE.finditer(folded):
        if not (m.group("unit") or m.group("approx") or m.group("verb")):
            continue  # a bare number after a period word is not a price (每年5000)
        fen = _fen(m.group("n"), 100)
        add("premium", -fen if _yearly(m.group("period")) else fen, m)
    for m in _PREMIUM_AFTER.finditer(folded):
        fen = _fen(m.group("n"), 100)
        add("premium", -fen if m.group("period") == "年" else fen, m)
    for m in _PREMIUM_YEN.finditer(folded):
        add("premium", _fen(m.group("n"), 100), m)
    for m in _SUM.finditer(folded):
        add("sum", _fen(m.group("n"), _UNIT_FEN[m.group("unit")]), m)
    for m in _PAYOUT.finditer(folded):
        if m.group("n") is not None:
            add("sum", _fen(m.group("n"), _UNIT_FEN[m.group("unit")]), m)
        else:
            add("sum", _fen(m.group("n2"), _UNIT_FEN[m.group("unit2")]), m, "n2")
    return sorted(out, key=lambda f: f.span)


def _insured(text: str) -> tuple[int | None, str | None]:
    """The one age and the one sex the text gives for the insured, if it gives exactly one."""
    folded = unicodedata.normalize("NFKC", text)
    ages = {int(m.group(1)) for m in _AGE.finditer(folded)}
    male, female = bool(_MALE.search(folded)), bool(_FEMALE.search(folded))
    return (
        ages.pop() if len(ages) == 1 else None,
        "M" if male and not female else "F" if female and not male else None,
    )


def _yearly(period: str | None) -> bool:
    return period is not None and "年" in period


def _catalog_figures(
    products: Sequence[Product], age: int | None = None, gender: str | None = None
) -> tuple[set[int], set[int]]:
    """Premiums (fen; a yearly figure is stored negated) and sums insured the products offer.

    A monthly premium also counts as twelve times itself a year; any other premium row counts
    as both a per-period and a yearly figure.  With an age or a sex, only the premium rows
    for it count (40岁也只要60元 is checked against the 31–40 row).
    """
    premiums: set[int] = set()
    sums: set[int] = set()
    for item in products:
        monthly = all(p.frequency.value == "monthly" for p in item.payment_options)
        for plan in item.plans:
            sums.add(plan.sum_insured_fen)
            sums.update(c.sum_insured_fen for c in plan.coverages)
            for row in plan.premiums:
                if age is not None and row.age is not None and not row.age[0] <= age <= row.age[1]:
                    continue
                if gender is not None and row.gender is not None and row.gender.value != gender:
                    continue
                premiums.add(row.premium_fen)
                premiums.add(-(row.premium_fen * 12 if monthly else row.premium_fen))
    return premiums, sums


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
    norm, index = rules.unalias(*normalize(text))
    starts, ends = _clauses(text, index)
    whole = (0, len(text))
    mentions = _Mentions(text, norm, index, ends)
    surrender_terms = [normalize(p.surrender.conditions.zh)[0] for p in products]
    uncertain = any(p.uncertain_benefits for p in products) or bool(_UNCERTAIN_TEXT.search(norm))
    stop_sale_published = rules.structural("stop_sale_hype") is not None and any(
        p.sale.stop_date is not None for p in products
    )
    findings: list[Finding] = []
    for rule, patterns in rules.text_rules():
        if rule.rule == "R25" and stop_sale_published:
            # A published stop date allows saying the product stops, not scarcity hype.
            patterns = [re.compile(p) for p in rule.despite_stop_notice]
        severity: Severity = (
            rule.severity_if_uncertain
            if uncertain and rule.severity_if_uncertain is not None
            else rule.severity
        )
        hits = {
            (m.start(), m.end())
            for pattern in patterns
            for m in pattern.finditer(norm)
            if m.end() > m.start()
            and not (rule.negatable and _negated(norm, m.start(), m.end(), starts, ends))
        }
        if rule.negatable and hits:
            hits = {h for h in hits if not mentions.mentioned(*h)}
        cancel = rules.unless(rule)
        if cancel is not None and hits:
            hits = {h for h in hits if not _cancelled(cancel, norm, h, rule.unless_window)}
        if rule.literal and hits:
            hits = {h for h in hits if not _literal(rule.literal, norm, h)}
        allowed = rule.allowed_by_terms
        if (
            allowed is not None
            and hits
            and any(re.search(allowed.terms, t) for t in surrender_terms)
        ):
            hits = {h for h in hits if re.search(allowed.hit, norm[h[0] : h[1]]) is None}
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

    prices = rules.structural("catalog_prices")
    if prices is not None and products:
        premiums, sums = _catalog_figures(products, *_insured(text))
        for figure in _stated_figures(text):
            if not figure.among(premiums if figure.kind == "premium" else sums):
                label = "保费" if figure.kind == "premium" else "保额"
                message = f"{label}“{figure.shown}”与产品目录不符"
                findings.append(_finding(prices, prices.severity, text, figure.span, message))

    findings.sort(key=lambda f: (f.span, f.rule_id))
    verdict: Verdict = (
        "fail" if any(f.severity == "fail" for f in findings) else "review" if findings else "pass"
    )
    return CheckResult(verdict=verdict, findings=findings)
