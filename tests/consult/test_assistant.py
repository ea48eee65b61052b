"""The assistant's knowledge base and decisions: segmentation of domain words, the
confidence threshold, advice questions always handed off, sources always given, product
facts following the catalog, the question log and the rates; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from covernet.catalog.service import forget_snapshots, load_into_db, snapshot
from covernet.consult import assistant, knowledge
from covernet.consult.assistant_models import AssistantQuestion, Outcome
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.core.errors import TooManyRequests, ValidationFailed
from tests.consult.test_assistant_quality import QUESTIONS

pytestmark = pytest.mark.usefixtures("loaded_catalog")


def test_domain_words_stay_whole() -> None:
    seg = knowledge.segmenter()
    for word in ("犹豫期", "退保", "等待期", "现金价值", "宽限期", "免赔额", "健康告知"):
        assert word in seg.words(f"请问{word}是什么意思"), word
    # Without the domain dictionary jieba cuts 犹豫期 into 犹豫 + 期.
    tokens = seg.tokens("我想解约")
    assert "退保" in tokens  # synonym group: 解约 stands for 退保
    assert "冷静期" not in seg.tokens("冷静期多久") and "犹豫期" in seg.tokens("冷静期多久")
    assert seg.tokens("How do I CANCEL my policies?")[:2] == ["退保", "保单"]


def test_confidence_needs_a_strong_and_clear_winner() -> None:
    cfg = knowledge.Confidence(scale=10, margin_weight=0.3, threshold=0.3)
    clear = assistant.confidence_of([40.0, 5.0], cfg)
    close = assistant.confidence_of([40.0, 39.0], cfg)
    weak = assistant.confidence_of([2.0, 0.2], cfg)
    assert clear > close and clear > weak
    assert 0 <= weak < cfg.threshold < clear <= 1
    assert assistant.confidence_of([], cfg) == 0.0
    assert assistant.confidence_of([0.0], cfg) == 0.0


def test_threshold_decides_between_answer_and_handoff(db: Any) -> None:
    q = "犹豫期多久啊"
    answered = assistant.decide(db, q, threshold=0.0)
    assert answered.outcome is Outcome.answered and answered.article is not None
    assert answered.article.id == "cooling-off"
    strict = assistant.decide(db, q, threshold=answered.confidence + 0.01)
    assert strict.outcome is Outcome.unsure and strict.article is None and strict.handed_off
    at = assistant.decide(db, q, threshold=answered.confidence)
    assert at.outcome is Outcome.answered
    # Nothing in the knowledge base: below the configured threshold.
    off_topic = assistant.decide(db, "今天天气怎么样")
    assert off_topic.handed_off and off_topic.confidence < knowledge.config().confidence.threshold


ADVICE = [
    "我该买哪个",
    "推荐一款重疾险",
    "帮我推荐个保险",
    "which plan should I buy",
    "这个适合我吗",
    "医疗险和重疾险哪个好",
    "给孩子买啥保险好",
    "Can you recommend a policy for my mother?",
    "犹豫期长的产品推荐一下",
    "退保了再买哪款划算",
]


@pytest.mark.parametrize("question", ADVICE)
def test_recommendation_questions_always_hand_off(db: Any, question: str) -> None:
    decision = assistant.decide(db, question, threshold=0.0)  # even at the lowest threshold
    assert decision.outcome is Outcome.advice
    assert decision.article is None and decision.handed_off


def test_asking_for_a_person_hands_off(db: Any) -> None:
    for q in ("转人工", "人工客服在吗", "I want to talk to a human", "agent please"):
        decision = assistant.decide(db, q, threshold=0.0)
        assert decision.outcome is Outcome.asked, q


def test_every_answer_names_its_source(db: Any) -> None:
    data = yaml.safe_load(QUESTIONS.read_text("utf-8"))
    index = knowledge.index_for(snapshot(db), "zh")
    answered = 0
    for item in data["dev"] + data["test"]:
        decision = assistant.decide(db, item["q"])
        if decision.handed_off:
            assert decision.article is None
            continue
        answered += 1
        assert decision.article is not None
        assert index.get(decision.article.id) == decision.article
        assert decision.article.url == f"/help/{decision.article.id}"
        assert decision.confidence >= knowledge.config().confidence.threshold
    assert answered > 50


def test_product_facts_follow_the_catalog(db_url: str, shipped_catalog: Any) -> None:
    with unit_of_work(db_url) as db:
        article = knowledge.index_for(snapshot(db), "zh").get("product-medical-million")
        assert article is not None
        assert "等待期30天" in article.body.zh and "不保证续保" in article.body.zh
        cooling = knowledge.index_for(snapshot(db), "zh").get("cooling-off")
        assert cooling is not None and "长生终身重大疾病保险（演示）：犹豫期15天" in cooling.body.zh
        claims = knowledge.index_for(snapshot(db), "zh").get("claims-medical-million")
        assert (
            claims is not None and "出院小结" in claims.body.zh and "费用明细清单" in claims.body.zh
        )
    products = []
    for p in shipped_catalog.products:
        if p.code == "medical-million":
            p = p.model_copy(update={"waiting_period_days": 60})
        if p.code == "ci-lifetime":
            p = p.model_copy(update={"cooling_off_days": 20})
        if p.code != "screen-guard":
            products.append(p)
    changed = shipped_catalog.model_copy(update={"products": products})
    with unit_of_work(db_url) as db:
        load_into_db(db, changed)
    forget_snapshots()
    with unit_of_work(db_url) as db:
        index = knowledge.index_for(snapshot(db), "zh")
        article = index.get("product-medical-million")
        assert article is not None and "等待期60天" in article.body.zh
        cooling = index.get("cooling-off")
        assert cooling is not None and "长生终身重大疾病保险（演示）：犹豫期20天" in cooling.body.zh
        assert index.get("product-screen-guard") is None  # unlisted products leave the base
        decision = assistant.decide(db, "康宁住院医疗险等待期多久", threshold=0.0)
        assert decision.article is not None and "60" in decision.article.answer("zh")


def test_questions_are_checked(db: Any) -> None:
    with pytest.raises(ValidationFailed) as empty:
        assistant.ask(db, "  \n ", client="1.2.3.4")
    assert empty.value.code == "question_empty" and empty.value.detail == {"field": "question"}
    with pytest.raises(ValidationFailed) as long:
        assistant.ask(db, "退" * 501, client="1.2.3.4")
    assert long.value.code == "question_too_long"
    assert long.value.detail["field"] == "question"
    with pytest.raises(ValidationFailed) as bad_id:
        assistant.ask(db, "退保", conversation_id="'; drop table", client="1.2.3.4")
    assert bad_id.value.detail == {"field": "conversation_id"}
    assert db.scalar(select(AssistantQuestion.id)) is None  # nothing written


def test_log_rows_mask_personal_data_and_rates_count(db_url: str, customer: dict[str, str]) -> None:
    start = clock.now()
    with unit_of_work(db_url) as db:
        a = assistant.ask(db, "犹豫期多久啊", customer_id=customer["id"], client="10.0.0.1")
        b = assistant.ask(
            db, "我手机13912345678，身份证110105199001010026，帮我推荐个保险", client="10.0.0.2"
        )
        c = assistant.ask(db, "今天天气怎么样", client="10.0.0.2")
    assert not a.handed_off and a.article is not None and a.conversation_id
    assert b.handed_off and b.outcome is Outcome.advice
    assert c.handed_off and c.outcome is Outcome.unsure
    with unit_of_work(db_url) as db:
        rows = {r.outcome: r for r in db.scalars(select(AssistantQuestion))}
        assert rows["answered"].customer_id == customer["id"]
        assert rows["answered"].article_id == "cooling-off"
        assert rows["answered"].confidence == pytest.approx(a.confidence)
        assert rows["answered"].thread_id == a.conversation_id
        advice = rows["advice"]
        assert advice.customer_id is None and advice.handed_off and advice.article_id is None
        assert "13912345678" not in advice.question and "139****5678" in advice.question
        assert "110105199001010026" not in advice.question
        assert "10.0.0.2" not in advice.client_key
        assert assistant.rates(db, start, clock.now() + timedelta(seconds=1)) == (3, 1, 2)
        assert assistant.rates(db, start - timedelta(days=2), start - timedelta(days=1)) == (
            0,
            0,
            0,
        )


def test_questions_are_throttled_per_client(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = knowledge.config()
    tight = cfg.model_copy(update={"throttle": knowledge.Throttle(per_minute=3, per_hour=100)})
    monkeypatch.setattr(knowledge, "config", lambda directory=None: tight)
    with unit_of_work(db_url) as db:
        for _ in range(3):
            assistant.ask(db, "退保", client="10.9.9.9")
    with unit_of_work(db_url) as db, pytest.raises(TooManyRequests):
        assistant.ask(db, "退保", client="10.9.9.9")
    with unit_of_work(db_url) as db:
        assistant.ask(db, "退保", client="10.9.9.8")  # another client is not held up
    with clock.shifted(timedelta(minutes=2)), unit_of_work(db_url) as db:
        assistant.ask(db, "退保", client="10.9.9.9")  # a minute later it is fine again


def test_without_the_desk_a_handoff_says_whom_to_call(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assistant, "_desk_handoff", lambda: None)
    with unit_of_work(db_url) as db:
        reply = assistant.ask(db, "转人工", client="10.1.1.1")
    assert reply.handed_off and reply.conversation_id is None
    assert "400-000-0000" in reply.answer
    with unit_of_work(db_url) as db:
        row = db.scalars(select(AssistantQuestion)).one()
        assert row.handed_off and row.handoff_conversation_id is None and row.outcome == "asked"


def test_a_desk_refusal_keeps_the_answer_and_the_log(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(db: Any, **_: Any) -> str:
        db.add(
            AssistantQuestion(  # written by the "desk", undone with its savepoint
                thread_id="x",
                client_key="x",
                question="x",
                lang="zh",
                answer="x",
                confidence=0.0,
                outcome="asked",
                handed_off=True,
            )
        )
        db.flush()
        raise ValidationFailed("no", code="empty_transcript")

    monkeypatch.setattr(assistant, "_desk_handoff", lambda: refuse)
    with unit_of_work(db_url) as db:
        reply = assistant.ask(db, "帮我推荐个保险", client="10.1.1.2")
    assert reply.handed_off and reply.conversation_id is None and "400-000-0000" in reply.answer
    with unit_of_work(db_url) as db:
        rows = list(db.scalars(select(AssistantQuestion)))
        assert [r.outcome for r in rows] == ["advice"]
