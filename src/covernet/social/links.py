"""Share links: a short, unguessable code that lands on a product, a red envelope or a
live session, and the funnel of what came through it (visit → sign-up → quote →
purchase), for the link itself and for the chain of links shared on from it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.compliance import drafts, licenses, live
from covernet.compliance.checker import AdvisorIdentity
from covernet.core.db import Base
from covernet.core.errors import Forbidden, NotFound
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.social import attribution
from covernet.social.link_models import EventKind, ShareEvent, ShareLink, TargetKind

SHARERS = frozenset({Role.customer, Role.advisor})
FUNNEL = (EventKind.visit, EventKind.signup, EventKind.quote, EventKind.purchase)
CODE_BYTES = 9  # 72 random bits, 12 URL-safe characters
ENVELOPE_TABLE = "red_envelopes"


class ShareLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Literal["product", "envelope", "live"]
    target_id: str = Field(min_length=1, max_length=64, description="product code or id")
    share_code: str | None = Field(
        default=None, max_length=24, description="the link this sharer arrived through"
    )


@dataclass
class Funnel:
    counts: dict[str, int]
    chain: dict[str, int]

    @property
    def rates(self) -> dict[str, float | None]:
        """Each step against visits (``None`` before the first visit)."""
        visits = self.counts.get(EventKind.visit.value, 0)
        return {
            kind.value: (round(self.counts.get(kind.value, 0) / visits, 4) if visits else None)
            for kind in FUNNEL[1:]
        }


@dataclass
class LinkStats:
    link: ShareLink
    funnel: Funnel
    children: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def target_path(kind: str, target_id: str) -> str:
    if kind == TargetKind.product.value:
        return f"/products/{target_id}"
    if kind == TargetKind.envelope.value:
        return f"/e/{target_id}"
    return f"/live/{target_id}"


def _unknown_target() -> NotFound:
    return NotFound("no such target to share", code="unknown_target", detail={"field": "target_id"})


def _check_target(db: Session, who: Principal, data: ShareLinkIn) -> None:
    if data.target == TargetKind.product.value:
        listed = catalog.snapshot(db).products.get(data.target_id)
        if listed is None:
            raise _unknown_target()
        if who.role is Role.advisor:  # R1: advising on a product needs its line
            assert who.user_id is not None
            licenses.require_license(db, who.user_id, listed.product.line)
    elif data.target == TargetKind.live.value:
        try:
            live.public(db, data.target_id)
        except NotFound:
            raise _unknown_target() from None
    else:
        # Red envelopes belong to their own module; their table is looked up by name so
        # share links do not depend on its code.
        table = Base.metadata.tables.get(ENVELOPE_TABLE)
        found = (
            db.execute(select(table.c.id).where(table.c.id == data.target_id)).first()
            if table is not None
            else None
        )
        if found is None:
            raise _unknown_target()


def create(
    db: Session, who: Principal, data: ShareLinkIn, *, arrived_with: str | None
) -> ShareLink:
    """A new link for the caller; its parent is the link they arrived through (an
    explicit ``share_code`` first, else their attribution cookie), unless that is theirs."""
    if who.role not in SHARERS or who.user_id is None:
        raise Forbidden("share links are for customers and advisors")
    _check_target(db, who, data)
    parent = attribution.link_by_code(db, data.share_code or arrived_with)
    if parent is not None and parent.owner_id == who.user_id:
        parent = db.get(ShareLink, parent.parent_id) if parent.parent_id else None
    link = ShareLink(
        code=secrets.token_urlsafe(CODE_BYTES),
        owner_id=who.user_id,
        owner_role=who.role.value,
        target_kind=data.target,
        target_id=data.target_id,
        parent_id=parent.id if parent is not None else None,
        depth=parent.depth + 1 if parent is not None else 1,
    )
    db.add(link)
    db.flush()
    audit.record(
        db,
        "share_link.create",
        actor=audit.Actor("user", who.user_id, who.role.value),
        subject_type="share_link",
        subject_id=link.id,
        detail={"target": data.target, "target_id": data.target_id, "depth": link.depth},
    )
    return link


def _funnels(db: Session, ids: list[str]) -> dict[str, Funnel]:
    out = {i: Funnel({k.value: 0 for k in FUNNEL}, {k.value: 0 for k in FUNNEL}) for i in ids}
    if not ids:
        return out
    rows = db.execute(
        select(ShareEvent.link_id, ShareEvent.kind, ShareEvent.depth, func.count())
        .where(ShareEvent.link_id.in_(ids), ShareEvent.kind.in_([k.value for k in FUNNEL]))
        .group_by(ShareEvent.link_id, ShareEvent.kind, ShareEvent.depth)
    )
    for link_id, kind, depth, count in rows:
        target = out[link_id].counts if depth == 1 else out[link_id].chain
        target[kind] = target.get(kind, 0) + int(count)
    return out


def _children(db: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = db.execute(
        select(ShareLink.parent_id, func.count())
        .where(ShareLink.parent_id.in_(ids))
        .group_by(ShareLink.parent_id)
    )
    return {str(parent): int(count) for parent, count in rows}


def own_links(db: Session, who: Principal) -> list[LinkStats]:
    rows = list(
        db.scalars(
            select(ShareLink)
            .where(ShareLink.owner_id == who.user_id)
            .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
            .limit(200)
        )
    )
    ids = [r.id for r in rows]
    funnels, children = _funnels(db, ids), _children(db, ids)
    return [LinkStats(r, funnels[r.id], children.get(r.id, 0)) for r in rows]


def stats(db: Session, who: Principal, link_id: str) -> LinkStats:
    """One of the caller's own links; anyone else's is 404."""
    row = db.get(ShareLink, link_id)
    if row is None or row.owner_id != who.user_id:
        raise NotFound("no such share link", detail={"field": "link_id"})
    return LinkStats(row, _funnels(db, [row.id])[row.id], _children(db, [row.id]).get(row.id, 0))


@dataclass(frozen=True)
class Landing:
    link: ShareLink
    path: str
    advisor: AdvisorIdentity | None
    product_name: str | None


def visit(db: Session, code: str) -> Landing:
    """Record a visit through ``code`` and say where it lands (and, for an advisor's
    link, whose identity block to show first, R2)."""
    link = attribution.link_by_code(db, code)
    if link is None:
        raise NotFound("no such share link", code="unknown_share_link")
    attribution.record(db, EventKind.visit, None, code=link.code)
    advisor = (
        drafts.advisor_identity(db, link.owner_id)
        if link.owner_role == Role.advisor.value
        else None
    )
    name = None
    if link.target_kind == TargetKind.product.value:
        listed = catalog.snapshot(db).products.get(link.target_id)
        name = listed.product.name.zh if listed is not None else None
    return Landing(link, target_path(link.target_kind, link.target_id), advisor, name)


def advisor_attributions(db: Session, *, limit: int = 5000) -> list[tuple[str, str, str, datetime]]:
    """(advisor, kind, subject, when) of the sign-ups and purchases that came directly
    through an advisor's link, oldest first (for the advisor's pool)."""
    rows = db.execute(
        select(ShareLink.owner_id, ShareEvent.kind, ShareEvent.subject_id, ShareEvent.at)
        .join(ShareLink, ShareLink.id == ShareEvent.link_id)
        .where(
            ShareEvent.depth == 1,
            ShareEvent.kind.in_([EventKind.signup.value, EventKind.purchase.value]),
            ShareEvent.subject_id.is_not(None),
            ShareLink.owner_role == Role.advisor.value,
        )
        .order_by(ShareEvent.at, ShareEvent.id)
        .limit(limit)
    )
    return [(o, k, s, at) for o, k, s, at in rows if s is not None]
