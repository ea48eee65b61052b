"""The knowledge base: hand-written help articles and product facts made from the catalog,
segmented (jieba for Chinese, lower-cased words for English) and ranked with BM25.

Hand-written articles are YAML files under ``catalog/knowledge/articles/`` (``id``,
``tags``, ``title`` and ``body`` in Chinese and English, optionally ``append``: a section
generated from the catalog, such as every product's 犹豫期).  Product facts
(``product-<code>``) and claim documents (``claims-<code>``) are generated from the
listed catalog (``catalog.service.snapshot``) and ``catalog/rules/claims.yaml``, so they
follow every catalog load.  ``catalog/knowledge/assistant.yaml`` holds the tunables:
synonyms, domain words, stop words, field weights, the hand-off phrases and the
confidence threshold.

The index of a language is built once per process and catalog revision; the jieba
dictionary is loaded lazily, once, by a tokenizer of our own (the global one stays
untouched) with the domain words added and its log kept quiet.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jieba  # type: ignore[import-untyped]
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]

from covernet.catalog.service import ListedProduct, Snapshot
from covernet.catalog.spec import LINE_LABELS, Product, Term
from covernet.claims import rules as claim_rules
from covernet.core.config import get_settings
from covernet.core.errors import ValidationFailed
from covernet.core.i18n_text import I18nText
from covernet.core.money import format_fen, format_fen_compact

Lang = Literal["zh", "en"]
KNOWLEDGE_DIR = "knowledge"
_CJK = re.compile(r"[\u3400-\u9fff]")
_ASCII_WORD = re.compile(r"^[a-z0-9]+$")


# Configuration --------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldWeights(_Model):
    title: int = Field(default=3, ge=1, le=10)
    tags: int = Field(default=2, ge=0, le=10)
    body: int = Field(default=1, ge=1, le=10)


class Confidence(_Model):
    """``confidence = s1 / (s1 + scale) * (1 - margin_weight * (1 - margin))`` where s1
    and s2 are the two best BM25 scores and ``margin = (s1 - s2) / s1``; an answer is
    given when it reaches ``threshold`` (calibrated on the dev split)."""

    scale: float = Field(gt=0)
    margin_weight: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)


class Throttle(_Model):
    per_minute: int = Field(ge=1)
    per_hour: int = Field(ge=1)


class AssistantConfig(_Model):
    max_question_chars: int = Field(ge=10, le=5000)
    confidence: Confidence
    throttle: Throttle
    weights: FieldWeights = Field(default_factory=FieldWeights)
    bigrams: bool = True
    # Characters that make a character bigram worthless (function words, pronouns).
    stop_chars: str = ""
    domain_words: list[str] = Field(default_factory=list)
    stop_words: list[str] = Field(default_factory=list)
    synonyms: list[list[str]] = Field(default_factory=list)
    # Phrases that need a licensed human (R1, R2) and phrases asking for one.
    advice_phrases: list[str] = Field(min_length=1)
    advice_patterns: list[str] = Field(default_factory=list)
    human_phrases: list[str] = Field(min_length=1)


class ArticleFile(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    tags: list[str] = Field(default_factory=list)
    title: I18nText
    body: I18nText
    append: Literal["cooling_off", "waiting_period", "surrender", "claim_documents"] | None = None


@dataclass(frozen=True)
class Article:
    id: str
    title: I18nText
    body: I18nText
    tags: tuple[str, ...] = ()
    generated: bool = False

    @property
    def url(self) -> str:
        return f"/help/{self.id}"

    def answer(self, lang: str) -> str:
        """The first block of the body: what the assistant says before the link."""
        text = self.body.get(lang).strip()
        first = text.split("\n\n", 1)[0].strip()
        return first if len(first) <= 600 else first[:599] + "…"


def knowledge_dir() -> Path:
    return get_settings().catalog_dir / KNOWLEDGE_DIR


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"{path}: {exc}", code="bad_knowledge_file") from exc


@lru_cache(maxsize=4)
def _config_at(path: str, mtime: float) -> AssistantConfig:
    try:
        return AssistantConfig.model_validate(_read_yaml(Path(path)))
    except ValidationError as exc:
        raise ValidationFailed(f"{path}: {exc}", code="bad_knowledge_file") from exc


def config(directory: Path | None = None) -> AssistantConfig:
    path = (directory or knowledge_dir()) / "assistant.yaml"
    return _config_at(str(path), path.stat().st_mtime)


def _articles_at(directory: Path) -> tuple[ArticleFile, ...]:
    found: list[ArticleFile] = []
    for path in sorted((directory / "articles").glob("*.yaml")):
        try:
            found.append(ArticleFile.model_validate(_read_yaml(path)))
        except ValidationError as exc:
            raise ValidationFailed(f"{path}: {exc}", code="bad_knowledge_file") from exc
    ids = [a.id for a in found]
    if len(ids) != len(set(ids)):
        raise ValidationFailed(f"{directory}: article ids repeat", code="bad_knowledge_file")
    return tuple(found)


@lru_cache(maxsize=4)
def _articles_cached(
    directory: str, stamp: tuple[tuple[str, float], ...]
) -> tuple[ArticleFile, ...]:
    return _articles_at(Path(directory))


def written_articles(directory: Path | None = None) -> tuple[ArticleFile, ...]:
    folder = directory or knowledge_dir()
    stamp = tuple((p.name, p.stat().st_mtime) for p in sorted((folder / "articles").glob("*.yaml")))
    return _articles_cached(str(folder), stamp)


# Articles made from the catalog ---------------------------------------------------------


def _t(zh: str, en: str) -> I18nText:
    return I18nText(zh=zh, en=en)


def _term_text(terms: Iterable[Term]) -> I18nText:
    labels = [t.label for t in terms]
    return _t("、".join(t.zh for t in labels), ", ".join(t.get("en") for t in labels))


def _days(n: int, zh_none: str = "无", en_none: str = "none") -> tuple[str, str]:
    if n == 0:
        return zh_none, en_none
    return f"{n}天", f"{n} days"


def _sum_range(product: Product) -> tuple[str, str]:
    sums = sorted({p.sum_insured_fen for p in product.plans})
    lo, hi = sums[0], sums[-1]
    zh = (
        format_fen_compact(lo)
        if lo == hi
        else f"{format_fen_compact(lo)}至{format_fen_compact(hi)}"
    )
    en_lo, en_hi = format_fen_compact(lo, lang="en"), format_fen_compact(hi, lang="en")
    return zh, en_lo if lo == hi else f"{en_lo} to {en_hi}"


def _cooling_off(product: Product) -> tuple[str, str]:
    if product.cooling_off_days == 0:
        return "无犹豫期", "no cooling-off period"
    fee = product.cooling_off_fee_fen
    zh = f"犹豫期{product.cooling_off_days}天"
    en = f"a {product.cooling_off_days}-day cooling-off period"
    if fee:
        zh += f"（期内退保退还全部保费，扣除不超过{format_fen(fee)}的工本费）"
        en += f" (cancel inside it for the whole premium less a fee of at most {format_fen(fee)})"
    else:
        zh += "（期内退保全额退还保费）"
        en += " (cancel inside it for the whole premium back)"
    return zh, en


PRODUCT_TAGS = (
    "产品",
    "保障",
    "保额",
    "保险期间",
    "保多久",
    "等待期",
    "犹豫期",
    "免赔额",
    "不赔",
    "责任免除",
)


def product_article(listed: ListedProduct) -> Article:
    p, insurer = listed.product, listed.insurer
    zh_name, en_name = p.name.zh, p.name.get("en")
    term = _term_text(p.terms_options)
    wait_zh, wait_en = _days(p.waiting_period_days)
    cool_zh, cool_en = _cooling_off(p)
    sum_zh, sum_en = _sum_range(p)
    line = LINE_LABELS[p.line]
    grace_zh, grace_en = _days(p.grace_period_days)
    renew_zh, renew_en = (
        ("保证续保", "guaranteed") if p.renewal.guaranteed else ("不保证续保", "not guaranteed")
    )
    if p.renewal.guaranteed and p.renewal.years:
        renew_zh += f"{p.renewal.years}年"
        renew_en += f" for {p.renewal.years} years"
    elig = p.eligibility
    ages_zh = (
        f"出生满{elig.min_age_days}天至{elig.max_age}周岁"
        if elig.min_age == 0 and elig.min_age_days
        else f"{elig.min_age}至{elig.max_age}周岁"
    )
    ages_en = (
        f"{elig.min_age_days} days old to {elig.max_age}"
        if elig.min_age == 0 and elig.min_age_days
        else f"{elig.min_age} to {elig.max_age}"
    )
    excl_zh = "\n".join(f"- {e.zh}" for e in p.terms.exclusions)
    excl_en = "\n".join(f"- {e.get('en')}" for e in p.terms.exclusions)
    zh = (
        f"{zh_name}由{insurer.name.zh}承保，属于{line.zh}保险。保险期间{term.zh}，"
        f"等待期{wait_zh}，{cool_zh}，保额{sum_zh}。"
        f"{p.renewal.note.zh}\n\n"
        f"- 保险公司：{insurer.legal_name.zh}\n- 保险期间：{term.zh}\n- 等待期：{wait_zh}\n"
        f"- 犹豫期：{cool_zh}\n- 宽限期：{grace_zh}\n- 保额：{sum_zh}\n"
        f"- 投保年龄：{ages_zh}\n- 续保：{renew_zh}\n\n"
        f"责任免除（保险公司不赔的情形）：\n{excl_zh}\n\n"
        f"退保：{p.surrender.conditions.zh}\n\n产品详情：/products/{p.code}"
    )
    en = (
        f"{en_name} is {line.get('en').lower()} cover from {insurer.name.get('en')}. "
        f"Term {term.get('en')}, waiting period {wait_en}, {cool_en}, sum insured {sum_en}. "
        f"{p.renewal.note.get('en')}\n\n"
        f"- Insurer: {insurer.legal_name.get('en')}\n- Term: {term.get('en')}\n"
        f"- Waiting period: {wait_en}\n- Cooling-off: {cool_en}\n- Grace period: {grace_en}\n"
        f"- Sum insured: {sum_en}\n"
        f"- Ages: {ages_en}\n- Renewal: {renew_en}\n\n"
        f"Exclusions (what is not covered):\n{excl_en}\n\n"
        f"Cancelling: {p.surrender.conditions.get('en')}\n\nProduct page: /products/{p.code}"
    )
    return Article(
        id=f"product-{p.code}",
        title=_t(f"{zh_name}：产品要点", f"{en_name}: key facts"),
        body=_t(zh, en),
        tags=(p.name.zh, line.zh, insurer.name.zh, *PRODUCT_TAGS),
        generated=True,
    )


def claims_article(listed: ListedProduct, rules: claim_rules.ClaimRules) -> Article:
    p = listed.product
    zh_lines, en_lines = [], []
    seen: set[str] = set()
    for plan in p.plans:
        for cov in plan.coverages:
            if cov.code in seen:
                continue
            seen.add(cov.code)
            docs = rules.documents_for(p.line, cov.code)
            zh_lines.append(f"- {cov.name.zh}：" + "、".join(d.zh for d in docs))
            en_lines.append(f"- {cov.name.get('en')}: " + "; ".join(d.en for d in docs))
    zh = (
        f"{p.name.zh}理赔：{p.terms.claims_procedure.zh}\n\n"
        "各项保障需要的材料（一次列全）：\n" + "\n".join(zh_lines) + "\n\n"
        "在“我的保单”中打开这张保单，点“申请理赔”即可在线报案；进度在“我的理赔”查看。"
    )
    en = (
        f"Claims on {p.name.get('en')}: {p.terms.claims_procedure.get('en')}\n\n"
        "Documents for each coverage (all listed at once):\n" + "\n".join(en_lines) + "\n\n"
        "Open the policy under My policies and tap Claim to report online; follow it under "
        "My claims."
    )
    return Article(
        id=f"claims-{p.code}",
        title=_t(f"{p.name.zh}怎么理赔、要准备哪些材料", f"{p.name.get('en')}: how to claim"),
        body=_t(zh, en),
        tags=("理赔", "报案", "材料", "怎么赔"),
        generated=True,
    )


def _appendix(kind: str, snap: Snapshot, rules: claim_rules.ClaimRules) -> tuple[str, str]:
    zh: list[str] = []
    en: list[str] = []
    products = [lp.product for lp in snap.products.values()]
    if kind == "cooling_off":
        for p in products:
            c_zh, c_en = _cooling_off(p)
            zh.append(f"- {p.name.zh}：{c_zh}")
            en.append(f"- {p.name.get('en')}: {c_en}")
    elif kind == "waiting_period":
        for p in products:
            w_zh, w_en = _days(p.waiting_period_days)
            zh.append(f"- {p.name.zh}：等待期{w_zh}")
            en.append(f"- {p.name.get('en')}: waiting period {w_en}")
    elif kind == "surrender":
        for p in products:
            days = p.surrender.processing_days
            zh.append(f"- {p.name.zh}：{p.surrender.conditions.zh}（{days}日内退款）")
            en.append(
                f"- {p.name.get('en')}: {p.surrender.conditions.get('en')} "
                f"(refund within {p.surrender.processing_days} days)"
            )
    else:  # claim_documents
        zh.append("- 所有理赔：" + "、".join(d.zh for d in rules.documents.common))
        en.append("- Every claim: " + "; ".join(d.en for d in rules.documents.common))
        for line, docs in rules.documents.by_line.items():
            label = LINE_LABELS[line]
            zh.append(f"- {label.zh}类：" + "、".join(d.zh for d in docs))
            en.append(f"- {label.get('en')}: " + "; ".join(d.en for d in docs))
    return "\n".join(zh), "\n".join(en)


def build_articles(
    snap: Snapshot, directory: Path | None = None, rules: claim_rules.ClaimRules | None = None
) -> list[Article]:
    """Every article: the hand-written ones (with their catalog sections) and the
    generated product facts and claim documents of each listed product."""
    rules = rules or claim_rules.current()
    out: list[Article] = []
    for a in written_articles(directory):
        body = a.body
        if a.append is not None:
            extra_zh, extra_en = _appendix(a.append, snap, rules)
            body = _t(
                f"{a.body.zh.rstrip()}\n\n{extra_zh}", f"{a.body.get('en').rstrip()}\n\n{extra_en}"
            )
        out.append(Article(a.id, a.title, body, tuple(a.tags)))
    for listed in snap.products.values():
        out.append(product_article(listed))
        out.append(claims_article(listed, rules))
    return out


# Segmentation ---------------------------------------------------------------------------


class Segmenter:
    """Chinese words (jieba, search mode) plus character bigrams, English lower-cased
    words; every word mapped to its synonym group's first word; stop words dropped."""

    def __init__(self, cfg: AssistantConfig) -> None:
        self.cfg = cfg
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.canonical: dict[str, str] = {}
        for group in cfg.synonyms:
            head = _norm(group[0])
            for word in group:
                self.canonical[_norm(word)] = head
        self.stop = {_norm(w) for w in cfg.stop_words}

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    logging.getLogger("jieba").setLevel(logging.WARNING)
                    jieba.setLogLevel(logging.WARNING)
                    tok = jieba.Tokenizer()
                    tok.initialize()
                    words = [*self.cfg.domain_words, *(w for g in self.cfg.synonyms for w in g)]
                    for word in words:
                        if _CJK.search(word):
                            tok.add_word(_norm(word), freq=200_000)
                    self._tokenizer = tok
        return self._tokenizer

    def words(self, text: str) -> list[str]:
        """The words of ``text`` as jieba cuts them (no synonyms, no stop words)."""
        cut = self.tokenizer().lcut_for_search(_norm(text))
        return [w.strip() for w in cut if w.strip() and not _is_punct(w.strip())]

    def tokens(self, text: str) -> list[str]:
        out: list[str] = []
        norm = _norm(text)
        for word in self.words(norm):
            if _ASCII_WORD.match(word):
                if len(word) < 2 and not word.isdigit():
                    continue
                word = _stem(word)
            if word in self.stop:
                continue
            out.append(self.canonical.get(word, word))
        if self.cfg.bigrams:
            for run in re.findall(r"[\u3400-\u9fff]{2,}", norm):
                out.extend(
                    f"{run[i]}{run[i + 1]}#"
                    for i in range(len(run) - 1)
                    if run[i] not in self.cfg.stop_chars and run[i + 1] not in self.cfg.stop_chars
                )
        return out


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _is_punct(word: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PSZC" for ch in word)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def detect_lang(text: str) -> Lang:
    return "zh" if _CJK.search(text) else "en"


# The index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    article: Article
    score: float


@dataclass
class Index:
    """Two BM25 indexes over the same articles: the whole text (title, tags and body)
    and the heading fields alone (title and tags), whose scores are added with the
    heading weight, so a word every article mentions in passing still finds the
    article that is about it."""

    lang: Lang
    articles: list[Article]
    segmenter: Segmenter
    full: Any = field(repr=False, default=None)
    heading: Any = field(repr=False, default=None)

    @classmethod
    def build(cls, articles: list[Article], lang: Lang, segmenter: Segmenter) -> Index:
        w = segmenter.cfg.weights
        full, heading = [], []
        for a in articles:
            title = segmenter.tokens(a.title.get(lang))
            tags = segmenter.tokens(" ".join(a.tags))
            body = segmenter.tokens(a.body.get(lang))
            full.append(title + tags + body * w.body or ["∅"])
            heading.append(title + tags * w.tags or ["∅"])
        return cls(lang, articles, segmenter, BM25Okapi(full), BM25Okapi(heading))

    def scores(self, text: str) -> list[float]:
        query = self.segmenter.tokens(text)
        if not query:
            return [0.0] * len(self.articles)
        full = self.full.get_scores(query)
        heading = self.heading.get_scores(query)
        weight = self.segmenter.cfg.weights.title
        return [float(f) + weight * float(h) for f, h in zip(full, heading, strict=True)]

    def search(self, text: str, limit: int = 5) -> list[Hit]:
        scores = self.scores(text)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [Hit(self.articles[i], scores[i]) for i in order[:limit] if scores[i] > 0]

    def get(self, article_id: str) -> Article | None:
        return next((a for a in self.articles if a.id == article_id), None)


_segmenter: tuple[AssistantConfig, Segmenter] | None = None
_indexes: dict[Lang, tuple[Snapshot, tuple[ArticleFile, ...], Index]] = {}
_build_lock = threading.Lock()


def segmenter(cfg: AssistantConfig | None = None) -> Segmenter:
    """The process's segmenter for the current configuration (jieba loads once)."""
    global _segmenter
    cfg = cfg or config()
    held = _segmenter
    if held is not None and held[0] is cfg:
        return held[1]
    with _build_lock:
        if _segmenter is None or _segmenter[0] is not cfg:
            _segmenter = (cfg, Segmenter(cfg))
        return _segmenter[1]


def index_for(snap: Snapshot, lang: Lang) -> Index:
    """The index of ``lang`` for this catalog snapshot (rebuilt when either the snapshot
    or the knowledge configuration changes)."""
    seg = segmenter()
    written = written_articles()
    held = _indexes.get(lang)
    if held is not None and held[0] is snap and held[1] is written and held[2].segmenter is seg:
        return held[2]
    built = Index.build(build_articles(snap), lang, seg)
    with _build_lock:
        _indexes[lang] = (snap, written, built)
    return built


def forget_indexes() -> None:
    with _build_lock:
        _indexes.clear()
