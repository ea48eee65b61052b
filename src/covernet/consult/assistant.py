"""The assistant: answers a customer's question from the knowledge base, or hands it to
the desk.

Order of decisions for one question:

1. a question asking which product to buy, or whether one suits the customer, is never
   answered: that is advice and needs a licensed human (R1, R2);
2. a question asking for a person is handed off at once;
3. otherwise the knowledge base ranks its articles (BM25); the best article is the
   answer only when the confidence (see :class:`knowledge.Confidence`) reaches the
   threshold, and the answer always names its source article; below it, hand-off.

Every question is logged in ``assistant_questions`` (mobile and ID numbers masked).
Questions sent with the same ``conversation_id`` form one exchange; a hand-off passes
the whole exchange to the desk as the transcript (``consult.service.open_handoff``).
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from covernet.catalog.service import snapshot
from covernet.consult import knowledge
from covernet.consult.assistant_models import AssistantQuestion, Outcome
from covernet.core import clock, i18n
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index
from covernet.core.errors import CovernetError, TooManyRequests, ValidationFailed
from covernet.core.ids import new_id
from covernet.core.masking import mask_id_number, mask_mobile

log = logging.getLogger("covernet.consult")
CLIENT_CONTEXT = "assistant.client"
HANDOFF_CHANNEL = "assistant"
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9Xx])")
_THREAD_ID = re.compile(r"^[0-9a-fA-F-]{8,36}$")


@dataclass(frozen=True)
class Decision:
    """What the assistant makes of a question, before anything is written."""

    outcome: Outcome
    lang: knowledge.Lang
    article: knowledge.Article | None
    confidence: float
    top: list[knowledge.Hit]

    @property
    def handed_off(self) -> bool:
        return self.outcome is not Outcome.answered


@dataclass(frozen=True)
class Reply:
    lang: knowledge.Lang
    answer: str
    article: knowledge.Article | None
    confidence: float
    handed_off: bool
    outcome: Outcome
    conversation_id: str | None


def confidence_of(scores: list[float], cfg: knowledge.Confidence) -> float:
    """How sure the best article is the answer, from 0 to 1: the best score's strength
    (``s1 / (s1 + scale)``) lowered when the runner-up is close (the normalised margin
    ``(s1 - s2) / s1``)."""
    if not scores or scores[0] <= 0:
        return 0.0
    s1 = scores[0]
    s2 = scores[1] if len(scores) > 1 else 0.0
    margin = (s1 - max(s2, 0.0)) / s1
    strength = s1 / (s1 + cfg.scale)
    return round(strength * (1 - cfg.margin_weight * (1 - margin)), 4)


def _contains(text: str, phrases: list[str]) -> bool:
    for phrase in phrases:
        p = phrase.lower()
        if p.isascii():
            if re.search(rf"\b{re.escape(p)}\b", text):
                return True
        elif p in text:
            return True
    return False


def wants_advice(text: str, cfg: knowledge.AssistantConfig) -> bool:
    norm = knowledge._norm(text)
    return _contains(norm, cfg.advice_phrases) or any(
        re.search(p, norm) for p in cfg.advice_patterns
    )


def wants_human(text: str, cfg: knowledge.AssistantConfig) -> bool:
    return _contains(knowledge._norm(text), cfg.human_phrases)


def check_question(question: str, cfg: knowledge.AssistantConfig) -> str:
    text = " ".join(question.split())
    if not text:
        raise ValidationFailed(
            "the question is empty", code="question_empty", detail={"field": "question"}
        )
    if len(text) > cfg.max_question_chars:
        raise ValidationFailed(
            f"the question is longer than {cfg.max_question_chars} characters",
            code="question_too_long",
            detail={"field": "question", "max_length": cfg.max_question_chars},
        )
    return text


def decide(
    db: Session, question: str, lang: str | None = None, *, threshold: float | None = None
) -> Decision:
    """The assistant's decision on one question (no writes).  ``threshold`` overrides
    the configured one (calibration)."""
    cfg = knowledge.config()
    text = check_question(question, cfg)
    chosen: knowledge.Lang = (
        "en" if lang == "en" else "zh" if lang == "zh" else knowledge.detect_lang(text)
    )
    if wants_advice(text, cfg):
        return Decision(Outcome.advice, chosen, None, 0.0, [])
    if wants_human(text, cfg):
        return Decision(Outcome.asked, chosen, None, 0.0, [])
    # Ranked in the question's own language; the answer is in the language asked for.
    index = knowledge.index_for(snapshot(db), knowledge.detect_lang(text))
    hits = index.search(text)
    confidence = confidence_of([h.score for h in hits], cfg.confidence)
    limit = cfg.confidence.threshold if threshold is None else threshold
    if hits and confidence >= limit:
        return Decision(Outcome.answered, chosen, hits[0].article, confidence, hits)
    return Decision(Outcome.unsure, chosen, None, confidence, hits)


def _text(outcome: Outcome, lang: str, desk: bool) -> str:
    key = f"assistant.reply.{outcome.value}" + ("" if desk else "_no_desk")
    return i18n.translate(key, lang, phone=get_settings().service_phone)


def mask_personal(text: str) -> str:
    """The question as logged: mobile and ID numbers masked."""
    text = _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0).upper()), text)
    return _MOBILE.sub(lambda m: mask_mobile(m.group(0)), text)


def _client_key(customer_id: str | None, visitor_id: str | None, client: str) -> str:
    if customer_id:
        who = f"customer:{customer_id}"
    elif visitor_id:
        who = f"visitor:{visitor_id}:{client}"
    else:
        who = f"ip:{client}"
    return get_blind_index().digest(who, context=CLIENT_CONTEXT)


def _throttle(db: Session, key: str, cfg: knowledge.AssistantConfig) -> None:
    now = clock.now()
    for window, limit in ((60, cfg.throttle.per_minute), (3600, cfg.throttle.per_hour)):
        count = db.scalar(
            select(func.count())
            .select_from(AssistantQuestion)
            .where(
                AssistantQuestion.client_key == key,
                AssistantQuestion.asked_at >= now - timedelta(seconds=window),
            )
        )
        if (count or 0) >= limit:
            raise TooManyRequests(
                "too many questions; please wait a little",
                detail={"retry_after_seconds": window},
            )


def _exchange(db: Session, thread_id: str, key: str) -> list[AssistantQuestion]:
    """Earlier questions of the same exchange by the same caller, oldest first."""
    rows = db.scalars(
        select(AssistantQuestion)
        .where(
            (AssistantQuestion.thread_id == thread_id)
            | (AssistantQuestion.handoff_conversation_id == thread_id),
            AssistantQuestion.client_key == key,
        )
        .order_by(AssistantQuestion.asked_at, AssistantQuestion.id)
        .limit(50)
    )
    return list(rows)


def _desk_handoff() -> Any:
    """The desk's ``open_handoff``, when the desk is installed."""
    try:
        desk = importlib.import_module("covernet.consult.service")
    except ImportError:
        return None
    return getattr(desk, "open_handoff", None)


def ask(
    db: Session,
    question: str,
    *,
    lang: str | None = None,
    conversation_id: str | None = None,
    customer_id: str | None = None,
    visitor_id: str | None = None,
    client: str = "unknown",
) -> Reply:
    """Answer one question or hand it off; log it either way.  ``visitor_id`` is an
    anonymous web-chat visitor's (from the desk's signed visitor token): a hand-off is
    then theirs to follow in the chat."""
    cfg = knowledge.config()
    text = check_question(question, cfg)
    if conversation_id is not None and not _THREAD_ID.match(conversation_id):
        raise ValidationFailed(
            "the conversation id is not one the assistant gave",
            code="invalid_conversation_id",
            detail={"field": "conversation_id"},
        )
    key = _client_key(customer_id, visitor_id, client)
    _throttle(db, key, cfg)
    decision = decide(db, text, lang)
    thread_id = conversation_id or new_id()
    earlier = _exchange(db, thread_id, key) if conversation_id else []
    if earlier:
        thread_id = earlier[0].thread_id
    already = next((r.handoff_conversation_id for r in earlier if r.handoff_conversation_id), None)
    open_handoff = _desk_handoff() if decision.handed_off and already is None else None
    if decision.article is not None:
        answer = decision.article.answer(decision.lang)
    else:
        answer = _text(
            decision.outcome, decision.lang, open_handoff is not None or already is not None
        )
    desk_id: str | None = already if decision.handed_off else None
    if open_handoff is not None:
        transcript: list[tuple[str, str]] = []
        for row in earlier:
            transcript += [("customer", row.question), ("bot", row.answer)]
        transcript += [("customer", mask_personal(text)), ("bot", answer)]
        try:
            with db.begin_nested():  # a refusal by the desk undoes only its own rows
                desk_id = open_handoff(
                    db,
                    customer_id=customer_id,
                    **({"visitor_id": visitor_id} if visitor_id and not customer_id else {}),
                    channel=HANDOFF_CHANNEL,
                    transcript=transcript,
                    subject=mask_personal(text)[:80],
                )
        except CovernetError as exc:
            log.warning("the desk refused a hand-off: %s", exc.code)
            answer = _text(decision.outcome, decision.lang, desk=False)
    db.add(
        AssistantQuestion(
            thread_id=thread_id,
            customer_id=customer_id,
            client_key=key,
            question=mask_personal(text),
            lang=decision.lang,
            article_id=decision.article.id if decision.article else None,
            answer=answer,
            confidence=decision.confidence,
            outcome=decision.outcome.value,
            handed_off=decision.handed_off,
            handoff_conversation_id=desk_id,
            asked_at=clock.now(),
        )
    )
    db.flush()
    if decision.handed_off:
        conversation: str | None = desk_id
    else:
        conversation = thread_id
    return Reply(
        lang=decision.lang,
        answer=answer,
        article=decision.article,
        confidence=decision.confidence,
        handed_off=decision.handed_off,
        outcome=decision.outcome,
        conversation_id=conversation,
    )


def rates(db: Session, since: datetime, until: datetime) -> tuple[int, int, int]:
    """Questions asked in ``[since, until)``: (asked, answered, handed off)."""
    row = db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((AssistantQuestion.handed_off.is_(False), 1), else_=0)), 0),
            func.coalesce(func.sum(case((AssistantQuestion.handed_off.is_(True), 1), else_=0)), 0),
        ).where(AssistantQuestion.asked_at >= since, AssistantQuestion.asked_at < until)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])
