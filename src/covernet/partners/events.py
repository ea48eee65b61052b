"""Partner events: signed, fresh, once each, handed to the handler of their type.

``POST /api/v1/partner/events`` carries ``{"event_id", "type", "occurred_at", "data"}``
from a partner (an API key of role ``partner`` named by a partner code of
``catalog/partners.yaml``).  :func:`receive_now`, in order, and before anything is
written:

1. the key must name a declared partner (403 ``unknown_partner``);
2. the body must be signed with that partner's secret within the time window
   (:mod:`covernet.partners.signing`; 401 ``signature_missing`` / ``signature_invalid``
   / ``stale_event``);
3. the envelope must parse (422) and its ``type`` must have a handler (400
   ``unknown_event_type``), whose own model then validates ``data`` (422).

Then, in one unit of work, the event is claimed by inserting its ``partner_events`` row
(unique per partner and event id) *before* the handler runs: a concurrent twin waits on
that insert (the unique index on PostgreSQL, the write lock on SQLite) until the first
commits, then reads the stored answer; a sequential replay finds it at once.  Either
way a replay is answered with the first answer (``duplicate: true``) and changes
nothing; the same id with a different body is 409 ``event_id_reused``.  A handler that
rejects the event raises, so its transaction — event row included — rolls back and the
partner may send it again once fixed.

Handlers register by type with :func:`handles`, where their domain lives; a module
that registers any is listed in :data:`HANDLER_MODULES`, imported before the first
event is dispatched, so registration never depends on import order.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core import clock
from covernet.core.bodies import parse_json_body
from covernet.core.config import get_settings
from covernet.core.db import unit_of_work
from covernet.core.errors import Conflict, ValidationFailed
from covernet.core.idempotency import request_hash
from covernet.identity.access import Principal
from covernet.partners import signing
from covernet.partners.models import PartnerEvent
from covernet.policies.partner import partner_of
from covernet.policies.partner_rules import partners_in

# Modules that register handlers (imported before the first dispatch).
HANDLER_MODULES: tuple[str, ...] = ("covernet.claims.parametric", "covernet.social.offers")
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
# 100 characters fit the claims' ``external_event_id``; longer keys are hashed.
MAX_KEY_LENGTH = 100

D = TypeVar("D", bound=BaseModel)


class EventIn(BaseModel):
    """A partner event: what happened (``type``, ``data``), when, and its id."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        pattern=EVENT_ID_PATTERN, description="the partner's id of this event (dedupes it)"
    )
    type: str = Field(min_length=1, max_length=64, description="e.g. flight.delayed")
    occurred_at: AwareDatetime = Field(description="when it happened, with a UTC offset")
    data: dict[str, Any] = Field(description="the type's own fields")


@dataclass(frozen=True)
class Received:
    """An event that passed the checks, as a handler sees it."""

    partner_code: str
    event_id: str
    type: str
    occurred_at: datetime
    actor: audit.Actor  # the partner's API key

    @property
    def key(self) -> str:
        """``partner:event_id``, unique across partners (kept on what the event makes)."""
        key = f"{self.partner_code}:{self.event_id}"
        if len(key) > MAX_KEY_LENGTH:
            return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        return key


@dataclass
class Outcome:
    """A handler's answer: ``result`` (a stable word) and what goes with it."""

    result: str
    detail: dict[str, Any] = field(default_factory=dict)
    claim_id: str | None = None


Handler = Callable[[Session, Received, Any], Outcome]


@dataclass(frozen=True)
class Registered:
    handler: Handler
    data: type[BaseModel]


_handlers: dict[str, Registered] = {}


def handles(event_type: str, data: type[D]) -> Callable[[Callable[..., Outcome]], Handler]:
    """Register ``handler(db, received, data)`` for events of ``event_type``; ``data`` is
    the pydantic model their ``data`` must validate against.  One handler per type."""

    def register(handler: Callable[..., Outcome]) -> Handler:
        known = _handlers.get(event_type)
        if known is not None and known.handler is not handler:
            raise RuntimeError(f"two handlers for partner events of type {event_type!r}")
        _handlers[event_type] = Registered(handler, data)
        return handler

    return register


def registry() -> Mapping[str, Registered]:
    for module in HANDLER_MODULES:
        importlib.import_module(module)
    return _handlers


# Receiving ---------------------------------------------------------------------------


def _data(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "data", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _stored(db: Session, partner_code: str, event_id: str, digest: str) -> dict[str, Any] | None:
    row = db.scalar(
        select(PartnerEvent).where(
            PartnerEvent.partner_code == partner_code, PartnerEvent.event_id == event_id
        )
    )
    if row is None:
        return None
    if row.body_sha256 != digest:
        raise Conflict(
            "this event id was used for a different event",
            code="event_id_reused",
            detail={"field": "event_id"},
        )
    return {**row.response, "duplicate": True}


def receive_now(who: Principal, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """Check, dedupe and handle one event in a unit of work of its own (off the event
    loop); the answer, or the first answer again for a replay."""
    settings = get_settings()
    partner = partner_of(who, partners_in(settings.catalog_dir))
    signing.verify(partner.code, headers, raw)
    event = parse_json_body(EventIn, raw)
    found = registry().get(event.type)
    if found is None:
        raise ValidationFailed(
            f"no partner event of type {event.type!r} is known",
            code="unknown_event_type",
            detail={"field": "type", "allowed": sorted(_handlers)},
        )
    data = _data(found.data, event.data)
    if event.occurred_at > clock.now() + timedelta(seconds=settings.partner_event_window_seconds):
        raise ValidationFailed(
            "the event's occurred_at is in the future",
            code="occurred_in_future",
            detail={"field": "occurred_at"},
        )
    digest = request_hash(event.model_dump(mode="json"))
    received = Received(
        partner_code=partner.code,
        event_id=event.event_id,
        type=event.type,
        occurred_at=clock.as_utc(event.occurred_at),
        actor=audit.Actor("api_key", who.api_key_id, "partner"),
    )
    for _ in range(2):
        try:
            with unit_of_work(settings.database_url) as db:
                return _handle(db, received, digest, found, data)
        except IntegrityError:
            continue  # a twin committed first: read its answer
    with unit_of_work(settings.database_url) as db:
        first = _stored(db, partner.code, event.event_id, digest)
    if first is None:  # pragma: no cover - the twin rolled back twice in a row
        raise Conflict("the event is being processed; send it again", code="event_in_progress")
    return first


def _handle(
    db: Session, received: Received, digest: str, found: Registered, data: BaseModel
) -> dict[str, Any]:
    first = _stored(db, received.partner_code, received.event_id, digest)
    if first is not None:
        return first
    row = PartnerEvent(
        partner_code=received.partner_code,
        event_id=received.event_id,
        type=received.type,
        body_sha256=digest,
        occurred_at=received.occurred_at,
        received_at=clock.now(),
        outcome="pending",
        status_code=200,
        response={},
    )
    db.add(row)
    db.flush()  # claims the event id (a concurrent twin waits here)
    outcome = found.handler(db, received, data)
    body: dict[str, Any] = {
        "event_id": received.event_id,
        "type": received.type,
        "result": outcome.result,
        **outcome.detail,
        "duplicate": False,
    }
    row.outcome, row.response, row.claim_id = outcome.result, body, outcome.claim_id
    db.flush()
    return body
