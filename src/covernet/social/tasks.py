"""The red envelopes' periodic job: expire unclaimed shares and refund them once."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.social import service
from covernet.social.models import EnvelopeStatus, RedEnvelope, RedEnvelopeShare, ShareStatus


def expire_envelopes(db: Session, *, limit: int = 500) -> int:
    """Refund every share due (never grabbed by the envelope's end, or grabbed and not
    activated within the hold); returns how many envelopes refunded something."""
    now = clock.now()
    held_due = select(RedEnvelopeShare.envelope_id).where(
        RedEnvelopeShare.status == ShareStatus.held.value, RedEnvelopeShare.hold_until <= now
    )
    ids = db.scalars(
        select(RedEnvelope.id)
        .where(
            RedEnvelope.status == EnvelopeStatus.open.value,
            or_(RedEnvelope.expires_at <= now, RedEnvelope.id.in_(held_due)),
        )
        .limit(limit)
    ).all()
    done = 0
    for envelope_id in ids:
        envelope = db.get(RedEnvelope, envelope_id, with_for_update=True, populate_existing=True)
        if envelope is None or envelope.status != EnvelopeStatus.open.value:
            continue
        if service.expire_envelope(db, envelope, now):
            done += 1
    return done
