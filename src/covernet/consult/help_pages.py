"""The help centre: ``/help`` (search box, the articles, the ask box) and
``/help/{id}`` (one article), in Chinese with an English toggle."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from covernet.catalog.service import snapshot
from covernet.consult import knowledge
from covernet.core import i18n
from covernet.core.errors import NotFound
from covernet.identity.access import Db, Public
from covernet.web.render import mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)
_PATH = re.compile(r"(/(?:products|help|policies|claims|account)(?:/[a-z0-9-]+)*)")


def _segments(line: str) -> list[dict[str, str | None]]:
    """A line of text with its site paths as links."""
    out: list[dict[str, str | None]] = []
    for i, part in enumerate(_PATH.split(line)):
        if part:
            out.append({"text": part, "href": part if i % 2 else None})
    return out


def blocks(text: str) -> list[dict[str, Any]]:
    """An article body as paragraphs and bullet lists (``- `` lines)."""
    out: list[dict[str, Any]] = []
    for chunk in text.strip().split("\n\n"):
        lines = [ln.strip() for ln in chunk.strip().splitlines() if ln.strip()]
        items = [ln[2:] for ln in lines if ln.startswith("- ")]
        head = [ln for ln in lines if not ln.startswith("- ")]
        if head:
            out.append({"kind": "p", "lines": [_segments(ln) for ln in head]})
        if items:
            out.append({"kind": "ul", "lines": [_segments(ln) for ln in items]})
    return out


def _entry(article: knowledge.Article, lang: str) -> dict[str, Any]:
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title.get(lang),
        "summary": article.answer(lang)[:90],
    }


@router.get("/help", response_class=HTMLResponse)
def help_home(
    request: Request,
    db: Db,
    _: Public,
    q: str = Query(default="", max_length=500),
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    query = " ".join(q.split())
    index = knowledge.index_for(snapshot(db), lang)
    results = None
    if query:
        found = knowledge.index_for(snapshot(db), knowledge.detect_lang(query)).search(query, 8)
        results = [_entry(h.article, lang) for h in found]
    written = [_entry(a, lang) for a in index.articles if not a.generated]
    products = [_entry(a, lang) for a in index.articles if a.generated]
    return render(
        request,
        "help.html",
        query=query,
        results=results,
        written=written,
        products=products,
    )


@router.get("/help/{article_id}", response_class=HTMLResponse)
def help_article(article_id: str, request: Request, db: Db, _: Public) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    article = knowledge.index_for(snapshot(db), lang).get(article_id)
    if article is None:
        raise NotFound(f"no help article '{article_id}'", code="unknown_article")
    return render(
        request,
        "help_article.html",
        article=_entry(article, lang),
        blocks=blocks(article.body.get(lang)),
    )
