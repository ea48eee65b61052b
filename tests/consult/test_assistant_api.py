"""``POST /api/v1/assistant/ask`` and the help pages, over HTTP on SQLite and PostgreSQL:
the answer's shape, errors naming the field, the log row, the customer link, hand-off to
the desk with the transcript, and the pages in both languages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from covernet.consult.assistant_models import AssistantQuestion
from covernet.core.db import unit_of_work

ASK = "/api/v1/assistant/ask"


def test_an_answer_carries_its_source(client: Any) -> None:
    got = client.post(ASK, json={"question": "买了想退怎么办"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert set(body) == {"answer", "source", "confidence", "handed_off", "conversation_id"}
    assert body["handed_off"] is False
    assert body["source"] == {
        "id": "surrender",
        "title": "买了不想要了怎么退保",
        "url": "/help/surrender",
    }
    assert "退保" in body["answer"] and 0 < body["confidence"] <= 1
    assert body["conversation_id"]
    page = client.get(body["source"]["url"])
    assert page.status_code == 200 and "买了不想要了怎么退保" in page.text
    english = client.post(ASK, json={"question": "how do I cancel my policy", "lang": "en"})
    assert english.json()["source"]["title"] == "How to cancel (surrender) a policy"


def test_bad_questions_are_refused_by_name(client: Any, db_url: str) -> None:
    empty = client.post(ASK, json={"question": "   "})
    assert empty.status_code == 400
    assert empty.json()["error"] == "question_empty"
    assert empty.json()["detail"]["field"] == "question"
    long = client.post(ASK, json={"question": "理赔" * 251})
    assert long.status_code == 400 and long.json()["error"] == "question_too_long"
    assert long.json()["detail"]["field"] == "question"
    missing = client.post(ASK, json={})
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "question"
    lang = client.post(ASK, json={"question": "退保", "lang": "fr"})
    assert lang.status_code == 422 and lang.json()["detail"][0]["field"] == "lang"
    bad_id = client.post(ASK, json={"question": "退保", "conversation_id": "x" * 40})
    assert bad_id.status_code == 400 and bad_id.json()["detail"]["field"] == "conversation_id"
    with unit_of_work(db_url) as db:
        assert db.scalar(select(AssistantQuestion.id)) is None


def test_advice_is_handed_to_the_desk_with_the_transcript(
    client: Any, customer_headers: dict[str, str], customer: dict[str, str], db_url: str
) -> None:
    first = client.post(ASK, headers=customer_headers, json={"question": "犹豫期多久啊"}).json()
    assert first["handed_off"] is False
    handed = client.post(
        ASK,
        headers=customer_headers,
        json={"question": "那我该买哪个？", "conversation_id": first["conversation_id"]},
    )
    body = handed.json()
    assert handed.status_code == 200 and body["handed_off"] is True and body["source"] is None
    assert body["confidence"] == 0 and "持牌顾问" in body["answer"]
    desk_id = body["conversation_id"]
    assert desk_id and desk_id != first["conversation_id"]
    messages = client.get(f"/api/v1/conversations/{desk_id}/messages", headers=customer_headers)
    assert messages.status_code == 200, messages.text
    texts = [(m["author_kind"], m["body"]) for m in messages.json() if m["purpose"] == "text"]
    assert texts[0] == ("customer", "犹豫期多久啊")
    assert texts[1][0] == "bot" and "犹豫期" in texts[1][1]
    assert texts[2] == ("customer", "那我该买哪个？")
    with unit_of_work(db_url) as db:
        rows = list(db.scalars(select(AssistantQuestion).order_by(AssistantQuestion.asked_at)))
        assert [r.customer_id for r in rows] == [customer["id"], customer["id"]]
        assert rows[0].thread_id == rows[1].thread_id
        assert rows[1].handoff_conversation_id == desk_id and rows[1].outcome == "advice"
    # A later question of the same exchange stays with that conversation.
    again = client.post(
        ASK, headers=customer_headers, json={"question": "转人工", "conversation_id": desk_id}
    ).json()
    assert again["handed_off"] is True and again["conversation_id"] == desk_id


def test_another_callers_exchange_is_not_joined(
    client: Any, anon_client: Any, customer_headers: dict[str, str]
) -> None:
    mine = client.post(
        ASK, headers=customer_headers, json={"question": "我的个人信息安全吗"}
    ).json()
    other = anon_client.post(
        ASK, json={"question": "人工", "conversation_id": mine["conversation_id"]}
    ).json()
    assert other["handed_off"] is True
    assert other["conversation_id"] != mine["conversation_id"]


def test_help_pages_in_both_languages(client: Any) -> None:
    home = client.get("/help")
    assert home.status_code == 200
    assert "帮助中心" in home.text and 'href="/help/cooling-off"' in home.text
    assert "康宁住院医疗险（演示）：产品要点" in home.text
    assert "/static/js/help.js" in home.text and "https://" not in home.text.split("<body")[1]
    found = client.get("/help", params={"q": "住院理赔材料"})
    assert found.status_code == 200 and "data-help-results" in found.text
    assert 'href="/help/claims-medical-million"' in found.text
    english = client.get("/help/cooling-off", params={"lang": "en"})
    assert english.status_code == 200 and "The cooling-off period" in english.text
    assert "Kangning Hospital Medical Cover (demo): no cooling-off period" in english.text
    product = client.get("/help/product-medical-million", params={"lang": "zh"})
    assert 'href="/products/medical-million"' in product.text and "不保证续保" in product.text
    missing = client.get("/help/no-such-article", headers={"accept": "text/html"})
    assert missing.status_code == 404


def test_a_chat_visitor_follows_the_handoff(anon_client: Any) -> None:
    made = anon_client.post("/api/v1/chat/visitor")
    assert made.status_code == 201, made.text
    token = {"X-Visitor-Token": made.json()["visitor_token"]}
    handed = anon_client.post(ASK, headers=token, json={"question": "我要找顾问聊聊"}).json()
    assert handed["handed_off"] is True and handed["conversation_id"]
    history = anon_client.get(
        f"/api/v1/conversations/{handed['conversation_id']}/messages", headers=token
    )
    assert history.status_code == 200, history.text
    assert any(m["body"] == "我要找顾问聊聊" for m in history.json())
    other = anon_client.post("/api/v1/chat/visitor").json()["visitor_token"]
    stranger = anon_client.get(
        f"/api/v1/conversations/{handed['conversation_id']}/messages",
        headers={"X-Visitor-Token": other},
    )
    assert stranger.status_code == 404
