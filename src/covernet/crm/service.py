"""Customer 360 for staff: find a customer, see everything about them in one place, tag
them, write notes, and (with a reason, audited) see one personal field in full.

Who sees whom (:func:`visible`): ops, compliance and admin every customer; an advisor
the customers of their pool and of desk conversations assigned to them; a supervisor
also the pools of the teams they supervise. A customer outside that is answered exactly
like one that does not exist (404 ``customer_not_found``), so ids leak nothing.

Other domains are read through their own service functions only. Personal data is
masked everywhere here; :func:`unmask` is the single way to a full value.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime, time, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.pricing import is_on_sale
from covernet.claims import service as claims
from covernet.core import clock
from covernet.core.cn_identity import age_on, normalize_mobile, parse_id_number
from covernet.core.errors import CovernetError, Forbidden, NotFound, ValidationFailed
from covernet.core.masking import mask_id_number, mask_mobile, mask_name
from covernet.crm import desk_reports, pool, suggest, teams
from covernet.crm.models import CustomerNote, CustomerTag, UnmaskView
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role, User
from covernet.payments import service as payments
from covernet.policies import applications, policies
from covernet.social import links
from covernet.social import service as social

READERS = frozenset({Role.advisor, Role.ops, Role.compliance, Role.admin})
TAG_VOCABULARY = (
    "vip",
    "family",
    "car_owner",
    "home_owner",
    "renewal_due",
    "complaint_risk",
    "prefers_phone",
    "prefers_chat",
)
FREE_TAG = re.compile(r"^[\w\u4e00-\u9fff-]{1,16}$")
NOTE_MAX = 1000
UNMASK_FIELDS = ("mobile", "id_number")
UNMASK_REASONS = (
    "customer_request",
    "policy_service",
    "claim_service",
    "complaint",
    "compliance_review",
)
REASON_MIN = 6  # characters of free text besides the reason chosen from the list
UNMASK_PER_HOUR = 20  # more in an hour by one staff member raises the monitor
SEARCH_LIMIT = 20
MASKED_SCAN = 5000  # customers compared against a masked mobile pattern
POLICY_NO = re.compile(r"^[A-Z]{1,4}\d{6,}-?[A-Z0-9]*$")  # CN20261201-7KQ2M9XW
MASKED_MOBILE = re.compile(r"^1\d{2}\*{4}\d{4}$")


def actor(who: Principal) -> audit.Actor:
    return audit.Actor("user", who.user_id, who.role.value if who.role else None)


def _not_found() -> NotFound:
    return NotFound("no such customer", code="customer_not_found", detail={"field": "customer_id"})


def _conversations(db: Session, customer_id: str) -> list[Any]:
    """The desk's conversations of the customer (none before the desk exists)."""
    try:
        desk = importlib.import_module("covernet.consult.service")
    except ImportError:
        return []
    read = getattr(desk, "conversations_of_customer", None)
    return list(read(db, customer_id)) if read is not None else []


def _consents(db: Session, customer_id: str) -> list[dict[str, Any]]:
    try:
        module = importlib.import_module("covernet.crm.consents")
    except ImportError:
        return []
    read = getattr(module, "consents_of", None)
    return [_plain(c) for c in read(db, customer_id)] if read is not None else []


def _plain(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return dict(value)


def visible(db: Session, who: Principal, customer_id: str) -> bool:
    scope = pool.scope_of(db, who)
    if scope.advisors is None:
        return who.role in READERS
    if not scope.advisors:
        return False
    entry = pool.current(db, customer_id)
    if entry is not None and scope.covers(entry.advisor_id):
        return True
    return any(
        getattr(c, "assignee_id", None) in scope.advisors for c in _conversations(db, customer_id)
    )


def customer(db: Session, who: Principal, customer_id: str) -> User:
    """The customer, if the caller may see them; else 404 whether or not they exist."""
    user = identity.get_user(db, customer_id)
    if user is None or user.role != Role.customer.value or not visible(db, who, user.id):
        raise _not_found()
    return user


# Search ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    id: str
    name: str  # masked
    mobile: str | None  # masked
    advisor_name: str | None
    matched: str  # mobile | masked_mobile | policy_no | name


def _names(db: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = db.execute(select(User.id, User.name).where(User.id.in_(ids)))
    return {user_id: name for user_id, name in rows}


def _customers_in_scope(db: Session, who: Principal) -> Any:
    stmt = select(User).where(User.role == Role.customer.value, User.is_active.is_(True))
    scope = pool.scope_of(db, who)
    if scope.advisors is not None:
        ids = [e.customer_id for e in pool.customers_of(db, scope, limit=MASKED_SCAN)]
        stmt = stmt.where(User.id.in_(ids))
    return stmt


def search(db: Session, who: Principal, q: str) -> list[Found]:
    """By full mobile (blind index), masked mobile (``138****1234``), policy number or
    part of the name; only customers the caller may see; everything masked."""
    q = " ".join(q.split())
    if not 2 <= len(q) <= 40:
        raise ValidationFailed(
            "search with 2 to 40 characters", code="invalid_query", detail={"field": "q"}
        )
    matched, rows = _match(db, who, q)
    rows = [u for u in rows if u.role == Role.customer.value and visible(db, who, u.id)]
    advisors = pool.advisors_of(db, [u.id for u in rows])
    names = _names(db, set(advisors.values()))
    return [
        Found(
            id=u.id,
            name=mask_name(u.name),
            mobile=identity.masked_mobile(u),
            advisor_name=names.get(advisors.get(u.id, "")),
            matched=matched,
        )
        for u in rows[:SEARCH_LIMIT]
    ]


def masked_query(q: str) -> str:
    """The query as it may be shown back: a full mobile number masked."""
    try:
        return mask_mobile(normalize_mobile(q.replace(" ", "").replace("-", "")))
    except CovernetError:
        return q


def _match(db: Session, who: Principal, q: str) -> tuple[str, list[User]]:
    compact = q.replace(" ", "").replace("-", "")
    try:
        number = normalize_mobile(compact)
    except CovernetError:
        number = None
    if number is not None:
        found = db.scalar(select(User).where(User.mobile_index == identity.mobile_index(number)))
        return "mobile", [found] if found is not None else []
    if MASKED_MOBILE.match(compact):
        head, tail = compact[:3], compact[-4:]
        stmt = _customers_in_scope(db, who).order_by(User.created_at.desc()).limit(MASKED_SCAN)
        hits = []
        for user in db.scalars(stmt):
            mobile = identity.user_mobile(user)
            if mobile and mobile[:3] == head and mobile[-4:] == tail:
                hits.append(user)
        return "masked_mobile", hits
    policy_no = q.replace(" ", "").upper()
    if POLICY_NO.match(policy_no):
        policy = policies.by_policy_no(db, policy_no)
        if policy is not None and policy.customer_id is not None:
            owner = identity.get_user(db, policy.customer_id)
            return "policy_no", [owner] if owner is not None else []
        return "policy_no", []
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = (
        _customers_in_scope(db, who)
        .where(User.name.like(pattern, escape="\\"))
        .order_by(User.name, User.id)
        .limit(SEARCH_LIMIT * 5)
    )
    return "name", list(db.scalars(stmt))


def pool_list(db: Session, who: Principal, *, limit: int = 100) -> list[dict[str, Any]]:
    """The customers of the caller's scope (own pool, team pools or all), masked."""
    entries = pool.customers_of(db, pool.scope_of(db, who), limit=limit)
    users = {
        u.id: u
        for u in db.scalars(select(User).where(User.id.in_([e.customer_id for e in entries])))
    }
    names = _names(db, {e.advisor_id for e in entries})
    return [
        {
            "customer_id": e.customer_id,
            "name": mask_name(users[e.customer_id].name),
            "mobile": identity.masked_mobile(users[e.customer_id]),
            "advisor_name": names.get(e.advisor_id),
            "source": e.source,
            "since": e.since,
        }
        for e in entries
        if e.customer_id in users
    ]


# The 360 -------------------------------------------------------------------------------


def _id_number(db: Session, customer_id: str) -> str | None:
    return applications.applicant_id_number(db, customer_id)


def _age(id_number: str | None) -> int | None:
    if not id_number:
        return None
    try:
        info = parse_id_number(id_number)
    except CovernetError:
        return None
    return age_on(info.birth_date, clock.today())


def suggestions(
    db: Session, customer_id: str, held: set[str], age: int | None
) -> list[dict[str, Any]]:
    """Lines similar customers hold that this one does not, each with a product on sale
    the customer is eligible for (by age, when known)."""
    everyone = policies.lines_by_customer(db)
    everyone.pop(customer_id, None)
    counts = suggest.count(everyone.values())
    today = clock.today()
    products: dict[str, Any] = {}
    for listed in sorted(catalog.snapshot(db).products.values(), key=lambda p: p.product.code):
        product = listed.product
        if not is_on_sale(product, today):
            continue
        rules = product.eligibility
        if age is not None and not rules.min_age <= age <= rules.max_age:
            continue
        products.setdefault(product.line.value, product)
    found = suggest.suggest(held, counts, eligible=set(products))
    return [
        {
            "line": s.line,
            "because": s.because,
            "percent": s.percent,
            "both": s.both,
            "holders": s.holders,
            "product_code": products[s.line].code,
            "product_name": {"zh": products[s.line].name.zh, "en": products[s.line].name.en},
        }
        for s in found
    ]


def _policy(p: Any, today: Any) -> dict[str, Any]:
    return {
        "policy_id": p.id,
        "policy_no": p.policy_no,
        "product_code": p.product_code,
        "line": p.line,
        "status": policies.effective_status(p, today),
        "premium_fen": p.premium_fen,
        "sum_insured_fen": p.sum_insured_fen,
        "effective_date": p.effective_date,
        "end_date": p.end_date,
        "gifted": p.gifted,
        "advisor_id": p.advisor_id,
    }


def _claim(c: Any) -> dict[str, Any]:
    return {
        "claim_id": c.id,
        "claim_no": c.claim_no,
        "line": c.line,
        "stage": c.stage,
        "amount_claimed_fen": c.amount_claimed_fen,
        "assessed_amount_fen": c.assessed_amount_fen,
        "incident_date": c.incident_date,
        "reported_at": c.reported_at,
    }


def _payment(db: Session, p: Any) -> dict[str, Any]:
    return {
        "payment_id": p.id,
        "purpose": p.purpose,
        "description": p.description,
        "amount_fen": p.amount_fen,
        "status": p.status,
        "created_at": p.created_at,
        "paid_at": p.paid_at,
        "refunds": [
            {
                "amount_fen": r.amount_fen,
                "status": r.status,
                "reason": r.reason,
                "created_at": r.created_at,
            }
            for r in payments.refunds_of(db, p.id)
        ],
    }


def _links(db: Session, customer_id: str) -> list[dict[str, Any]]:
    owner = Principal(role=Role.customer, user_id=customer_id)
    return [
        {
            "code": s.link.code,
            "target": s.link.target_kind,
            "target_id": s.link.target_id,
            "created_at": s.link.created_at,
            "visits": s.funnel.counts.get("visit", 0),
            "signups": s.funnel.counts.get("signup", 0),
            "purchases": s.funnel.counts.get("purchase", 0),
            "chain_purchases": s.funnel.chain.get("purchase", 0),
        }
        for s in links.own_links(db, owner)
    ]


def view(db: Session, who: Principal, customer_id: str) -> dict[str, Any]:
    """Everything about one customer the caller may see, personal data masked."""
    user = customer(db, who, customer_id)
    today = clock.today()
    id_number = _id_number(db, user.id)
    held = policies.of_customer(db, user.id)
    entry = pool.current(db, user.id)
    tags = tags_of(db, user.id)
    notes = notes_of(db, user.id)
    history = pool.history(db, user.id)
    people = _names(
        db,
        {n.author_id for n in notes}
        | {h.advisor_id for h in history}
        | ({entry.advisor_id} if entry else set()),
    )
    in_force = {
        p.line for p in held if policies.effective_status(p, today) in ("in_force", "pending")
    }
    conversations = _conversations(db, user.id)
    return {
        "customer_id": user.id,
        "name": user.name,
        "mobile": identity.masked_mobile(user),
        "id_number": mask_id_number(id_number) if id_number else None,
        "registered_at": user.created_at,
        "advisor": (
            {
                "advisor_id": entry.advisor_id,
                "name": people.get(entry.advisor_id),
                "source": entry.source,
                "since": entry.since,
            }
            if entry
            else None
        ),
        "pool_history": [
            {
                "advisor_id": h.advisor_id,
                "name": people.get(h.advisor_id),
                "source": h.source,
                "since": h.since,
                "until": h.until,
                "reason": h.reason,
            }
            for h in history
        ],
        "consents": _consents(db, user.id),
        "policies": [_policy(p, today) for p in held],
        "claims": [_claim(c) for c in claims.of_customer(db, user.id)],
        "payments": [_payment(db, p) for p in payments.payments_of(db, user.id)],
        "envelopes_sent": [
            {
                "envelope_id": e.id,
                "product_code": e.product_code,
                "shares": e.shares_total,
                "premium_fen": e.premium_fen,
                "refunded_fen": e.refunded_fen,
                "status": e.status,
                "created_at": e.created_at,
            }
            for e in social.envelopes_sent_by(db, user.id)
        ],
        "envelopes_grabbed": [
            {
                "envelope_id": s.envelope_id,
                "status": s.status,
                "premium_fen": s.premium_fen,
                "sum_insured_fen": s.sum_insured_fen,
                "policy_id": s.policy_id,
                "grabbed_at": s.grabbed_at,
            }
            for s in social.grabs_by(db, user.id)
        ],
        "share_links": _links(db, user.id),
        "conversations": [_plain(c) for c in conversations],
        "tags": [t.tag for t in tags],
        "notes": [
            {
                "note_id": n.id,
                "author_id": n.author_id,
                "author": people.get(n.author_id),
                "body": n.body,
                "created_at": n.created_at,
            }
            for n in notes
        ],
        "suggestions": suggestions(db, user.id, in_force, _age(id_number)),
    }


# Tags and notes ----------------------------------------------------------------------


def tags_of(db: Session, customer_id: str) -> list[CustomerTag]:
    return list(
        db.scalars(
            select(CustomerTag)
            .where(CustomerTag.customer_id == customer_id)
            .order_by(CustomerTag.created_at, CustomerTag.tag)
        )
    )


def _clean_tag(tag: str) -> str:
    tag = tag.strip()
    if tag in TAG_VOCABULARY:
        return tag
    if not FREE_TAG.match(tag):
        raise ValidationFailed(
            "a tag is one of the list or 1 to 16 letters, digits, Chinese characters or -",
            code="invalid_tag",
            detail={"field": "tag"},
        )
    return tag


def add_tag(db: Session, who: Principal, customer_id: str, tag: str) -> CustomerTag | None:
    """Tag the customer (a tag already there is left as it is; returns None then)."""
    user = customer(db, who, customer_id)
    tag = _clean_tag(tag)
    if len(tags_of(db, user.id)) >= 30:
        raise ValidationFailed(
            "a customer has at most 30 tags", code="too_many_tags", detail={"field": "tag"}
        )
    row = CustomerTag(customer_id=user.id, tag=tag, created_by=who.user_id or "")
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        return None
    return row


def remove_tag(db: Session, who: Principal, customer_id: str, tag: str) -> None:
    user = customer(db, who, customer_id)
    row = db.scalar(
        select(CustomerTag).where(CustomerTag.customer_id == user.id, CustomerTag.tag == tag)
    )
    if row is None:
        raise NotFound(
            "the customer has no such tag", code="tag_not_found", detail={"field": "tag"}
        )
    db.delete(row)
    db.flush()


def notes_of(db: Session, customer_id: str) -> list[CustomerNote]:
    return list(
        db.scalars(
            select(CustomerNote)
            .where(CustomerNote.customer_id == customer_id)
            .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())
            .limit(200)
        )
    )


def add_note(db: Session, who: Principal, customer_id: str, body: str) -> CustomerNote:
    user = customer(db, who, customer_id)
    body = body.strip()
    if not 2 <= len(body) <= NOTE_MAX:
        raise ValidationFailed(
            f"a note has 2 to {NOTE_MAX} characters", code="invalid_note", detail={"field": "body"}
        )
    note = CustomerNote(customer_id=user.id, author_id=who.user_id or "", body=body)
    db.add(note)
    db.flush()
    return note


# Unmasked views --------------------------------------------------------------------


def unmask(
    db: Session, who: Principal, customer_id: str, field: str, reason_code: str, reason: str
) -> str:
    """The full value of one personal field, for a stated reason; audited (who, whom,
    which field, why). Refused (403 ``not_your_customer``) for a customer the caller may
    not see, whether or not the customer exists."""
    if field not in UNMASK_FIELDS:
        raise ValidationFailed(
            "choose mobile or id_number", code="invalid_field", detail={"field": "field"}
        )
    if reason_code not in UNMASK_REASONS:
        raise ValidationFailed(
            "choose the reason from the list",
            code="reason_required",
            detail={"field": "reason_code"},
        )
    reason = " ".join(reason.split())
    if not REASON_MIN <= len(reason) <= 200:
        raise ValidationFailed(
            f"describe the reason in {REASON_MIN} to 200 characters",
            code="reason_too_short",
            detail={"field": "reason"},
        )
    user = identity.get_user(db, customer_id)
    if user is None or user.role != Role.customer.value or not visible(db, who, user.id):
        raise Forbidden("this customer is not yours to view in full", code="not_your_customer")
    value = identity.user_mobile(user) if field == "mobile" else _id_number(db, user.id)
    if value is None:
        raise NotFound(
            "the customer has not given this", code="field_empty", detail={"field": "field"}
        )
    db.add(
        UnmaskView(
            staff_id=who.user_id or "", customer_id=user.id, field=field, reason_code=reason_code
        )
    )
    audit.record(
        db,
        "customer.unmask",
        actor=actor(who),
        subject_type="user",
        subject_id=user.id,
        detail={"field": field, "reason_code": reason_code, "reason": reason},
    )
    return value


def staff_names(db: Session, ids: set[str]) -> dict[str, str]:
    return _names(db, ids)


def unmask_counts(db: Session, *, hours: int = 1) -> list[tuple[str, int]]:
    """(staff, views) in the last ``hours``, most first."""
    since = clock.now() - timedelta(hours=hours)
    rows = db.execute(
        select(UnmaskView.staff_id, func.count())
        .where(UnmaskView.at >= since)
        .group_by(UnmaskView.staff_id)
        .order_by(func.count().desc(), UnmaskView.staff_id)
    )
    return [(s, int(n)) for s, n in rows]


# Desk reports ------------------------------------------------------------------------

REPORT_READERS = frozenset({Role.ops, Role.compliance, Role.admin})


def can_read_reports(db: Session, who: Principal) -> bool:
    """Ops, compliance and admin see the whole desk; a supervisor their teams'."""
    if who.role in REPORT_READERS:
        return True
    return (
        who.role is Role.advisor
        and who.user_id is not None
        and teams.is_supervisor(db, who.user_id)
    )


def desk_report(
    db: Session, who: Principal, since: datetime, until: datetime
) -> desk_reports.Report:
    """The desk's figures for conversations that arrived in ``[since, until)``: rows from
    the desk's own inbox function, aggregated by :mod:`covernet.crm.desk_reports`."""
    from covernet.consult import assistant, priority
    from covernet.consult import service as desk

    if not can_read_reports(db, who):
        raise Forbidden(
            "the desk reports are for supervisors, ops and compliance", code="forbidden_reports"
        )
    everything = Principal(role=Role.ops)  # the desk's whole inbox, every state
    rows = [
        c
        for c in desk.inbox(db, everything, state=None, limit=50_000)
        if since <= c.created_at < until
    ]
    if who.role not in REPORT_READERS and who.user_id is not None:
        team = teams.team_members(db, who.user_id)
        rows = [c for c in rows if c.assignee_id in team]
    names = _names(db, {c.assignee_id for c in rows if c.assignee_id})
    rules = priority.current().sla
    hours = rules.business_hours
    targets = desk_reports.SlaTargets(
        first_response_minutes=rules.first_response_minutes,
        resolution_hours=rules.resolution_hours,
        calendar=desk_reports.Calendar(
            days=frozenset(hours.days),
            start=time.fromisoformat(hours.start),
            end=time.fromisoformat(hours.end),
        ),
    )
    asked, answered, handed_off = assistant.rates(db, since, until)
    return desk_reports.report(
        (
            desk_reports.Row(
                channel=c.channel,
                created_at=c.created_at,
                first_response_at=c.first_response_at,
                resolved_at=c.resolved_at,
                csat_score=c.csat_score,
                assignee_id=c.assignee_id,
                assignee_name=names.get(c.assignee_id) if c.assignee_id else None,
            )
            for c in rows
        ),
        targets,
        desk_reports.BotFigures(asked, answered, handed_off),
    )
