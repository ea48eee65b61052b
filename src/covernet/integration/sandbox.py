"""The sandbox insurer: plays an insurer's core system for tests and demos (R19).

It exists while ``COVERNET_INSURER_ENDPOINTS`` sends some insurer to ``sandbox``.  It
checks a delivery as a real insurer should (signature over ``"<timestamp>.<body>"``
with the insurer's secret, timestamp within five minutes, event id header equal to the
body's), keeps each event once however often it comes (``deliveries`` counts them), and
can be told to refuse the next N deliveries (503) so retries and dead letters show.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.core.errors import CovernetError, NotFound
from covernet.integration.insurers import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sandbox_secret,
    sign,
)
from covernet.integration.models import SandboxInsurerControl, SandboxInsurerEvent

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024


class SignatureInvalid(CovernetError):
    """A delivery whose signature, timestamp or event id does not verify: not stored."""

    code = "invalid_signature"
    status = 400


def _secret(insurer_code: str) -> str:
    secret = sandbox_secret(insurer_code)
    if secret is None:
        raise NotFound(
            "the sandbox does not play this insurer",
            code="unknown_insurer",
            detail={"insurer_code": insurer_code},
        )
    return secret


def verify(insurer_code: str, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
    """The event, if the delivery is signed by ``insurer_code``'s secret, recent and
    consistent; else :class:`SignatureInvalid`."""
    secret = _secret(insurer_code)
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    event_id = lowered.get(EVENT_ID_HEADER.lower(), "")
    if not timestamp.isdigit() or not signature or not event_id:
        raise SignatureInvalid(
            "the delivery is not signed",
            detail={"headers": [TIMESTAMP_HEADER, SIGNATURE_HEADER, EVENT_ID_HEADER]},
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureInvalid("the delivery's signature does not verify")
    if abs(clock.now().timestamp() - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureInvalid(
            "the delivery's timestamp is outside the accepted window",
            code="stale_delivery",
            detail={"tolerance_seconds": TOLERANCE_SECONDS},
        )
    try:
        event = json.loads(body)
        ok = isinstance(event, dict) and event.get("event_id") == event_id
        ok = (
            ok and event.get("insurer_code") == insurer_code and isinstance(event.get("topic"), str)
        )
    except ValueError:
        ok = False
    if not ok:
        raise SignatureInvalid(
            "the body is not an event for this insurer with the event id of its header",
            code="malformed_delivery",
        )
    return dict(event)


def take_failure(db: Session, insurer_code: str) -> bool:
    """Whether this delivery is to be refused (and one fewer of the next ones)."""
    done = db.execute(
        update(SandboxInsurerControl)
        .where(
            SandboxInsurerControl.insurer_code == insurer_code,
            SandboxInsurerControl.fail_next > 0,
        )
        .values(fail_next=SandboxInsurerControl.fail_next - 1)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Received:
    event_id: str
    duplicate: bool
    deliveries: int


def receive(db: Session, insurer_code: str, event: dict[str, object], body: bytes) -> Received:
    """Keep the event once; a repeat only counts."""
    event_id = str(event["event_id"])
    now = clock.now()
    try:
        with db.begin_nested():
            db.add(
                SandboxInsurerEvent(
                    insurer_code=insurer_code,
                    event_id=event_id,
                    topic=str(event["topic"]),
                    body=body.decode(),
                    deliveries=1,
                    received_at=now,
                    last_received_at=now,
                )
            )
        return Received(event_id, False, 1)
    except IntegrityError:
        pass
    db.execute(
        update(SandboxInsurerEvent)
        .where(
            SandboxInsurerEvent.insurer_code == insurer_code,
            SandboxInsurerEvent.event_id == event_id,
        )
        .values(deliveries=SandboxInsurerEvent.deliveries + 1, last_received_at=now)
    )
    count = db.scalar(
        select(SandboxInsurerEvent.deliveries).where(
            SandboxInsurerEvent.insurer_code == insurer_code,
            SandboxInsurerEvent.event_id == event_id,
        )
    )
    return Received(event_id, True, int(count or 0))


def fail_next(db: Session, insurer_code: str, count: int) -> int:
    """Refuse the next ``count`` deliveries to ``insurer_code`` (0 stops refusing)."""
    _secret(insurer_code)
    control = db.get(SandboxInsurerControl, insurer_code)
    if control is None:
        control = SandboxInsurerControl(insurer_code=insurer_code, fail_next=count)
        db.add(control)
    else:
        control.fail_next = count
    db.flush()
    return count


def received(db: Session, insurer_code: str, *, limit: int = 100) -> list[SandboxInsurerEvent]:
    """What the sandbox insurer kept, newest first."""
    _secret(insurer_code)
    return list(
        db.scalars(
            select(SandboxInsurerEvent)
            .where(SandboxInsurerEvent.insurer_code == insurer_code)
            .order_by(SandboxInsurerEvent.id.desc())
            .limit(limit)
        )
    )
