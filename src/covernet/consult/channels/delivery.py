"""The outbound delivery queue shared by the desk's channels (e-mail, official account).

A channel keeps one row per answer to send (its own table, see :class:`Row`) and a
:class:`Queue` describing it: the row model, its status values, how a row becomes a
payload (``compose``, in the claiming transaction) and how a payload leaves (``send``,
with no transaction open).  :meth:`Queue.deliver_due` queues answers not queued yet,
claims due rows with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
on SQLite), sends each and settles it: ``sent``, another attempt after
``notify.service.backoff``, or ``failed`` after ``max_attempts`` or a permanent refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, class_mapper

from covernet.consult.channels import base
from covernet.consult.models import AuthorKind, Conversation, ConversationMessage
from covernet.core import clock
from covernet.core.db import is_postgres, unit_of_work
from covernet.notify.notifiers import DeliveryFailed
from covernet.notify.service import backoff


class Row(Protocol):
    """A row of a channel's delivery table (``DeskEmail``, ``DeskWechatMessage``); the
    table also has ``conversation_id``, ``direction``, ``created_at`` and
    ``desk_message_id`` (the answer it carries).  The queries use the mapped table's
    columns of these names."""

    id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    claimed_until: datetime | None
    last_error: str | None
    sent_at: datetime | None


class Statuses(Protocol):
    """A row model's status enum (``EmailStatus``, ``WechatStatus``): the values used."""

    @property
    def queued(self) -> str: ...

    @property
    def sent(self) -> str: ...

    @property
    def failed(self) -> str: ...


RowT = TypeVar("RowT", bound=Row)
PayloadT = TypeVar("PayloadT")

INBOUND = "inbound"  # the direction of the customer's rows in every channel table
LEASE_SECONDS = 60
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Outgoing(Generic[PayloadT]):
    row_id: str
    payload: PayloadT

    def __repr__(self) -> str:  # never show the recipient
        return f"Outgoing({self.row_id!r})"


@dataclass
class Adapter:
    """A queue's channel adapter (``channels.base.send_out``): a public answer is queued
    in the caller's transaction and leaves with the next delivery."""

    name: str
    queue: Callable[[Session, Conversation, ConversationMessage], bool]

    def send(self, db: Session, conversation: Conversation, message: ConversationMessage) -> None:
        self.queue(db, conversation, message)


@dataclass(frozen=True)
class Queue(Generic[RowT, PayloadT]):
    """One channel's outbound queue."""

    model: type[RowT]
    channel: str  # the conversations' channel (``Channel.<name>.value``)
    statuses: Statuses
    # The outbound row (status queued, due now) answering the last inbound one.
    outbound: Callable[[Conversation, ConversationMessage, RowT], RowT]
    # The payload of a claimed row; None when its desk message is gone.
    compose: Callable[[Session, RowT], PayloadT | None]
    # Hand one payload over; raises ``DeliveryFailed`` when refused.
    send: Callable[[PayloadT], None]
    log: logging.Logger
    what: str  # "desk e-mail": how the log names one row
    lease_seconds: int = LEASE_SECONDS
    max_attempts: int = MAX_ATTEMPTS

    @property
    def queued(self) -> str:
        return str(self.statuses.queued)

    @property
    def sent(self) -> str:
        return str(self.statuses.sent)

    @property
    def failed(self) -> str:
        return str(self.statuses.failed)

    def latest_inbound(self, db: Session, conversation_id: str) -> RowT | None:
        """The conversation's latest inbound row (the customer's latest address)."""
        c = class_mapper(self.model).columns
        return db.scalar(
            select(self.model)
            .where(c.conversation_id == conversation_id, c.direction == INBOUND)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(1)
        )

    def queue(self, db: Session, conversation: Conversation, message: ConversationMessage) -> bool:
        """Queue ``message`` (a public advisor answer) to the conversation's latest sender;
        in the caller's transaction.  False when there is nothing to send."""
        if (
            message.private
            or message.author_kind != AuthorKind.advisor.value
            or conversation.channel != self.channel
        ):
            return False
        c = class_mapper(self.model).columns
        if db.scalar(select(c.id).where(c.desk_message_id == message.id)):
            return False
        last_in = self.latest_inbound(db, conversation.id)
        if last_in is None:
            return False
        db.add(self.outbound(conversation, message, last_in))
        db.flush()
        return True

    def queue_unsent(self, db: Session, limit: int = 200) -> int:
        """Queue every public advisor answer in a conversation of this channel not queued
        yet (the desk writes answers without knowing the channel; this is how they leave)."""
        model, c = self.model, class_mapper(self.model).columns
        rows = db.execute(
            select(ConversationMessage, Conversation)
            .join(Conversation, Conversation.id == ConversationMessage.conversation_id)
            .outerjoin(model, c.desk_message_id == ConversationMessage.id)
            .where(
                Conversation.channel == self.channel,
                ConversationMessage.author_kind == AuthorKind.advisor.value,
                ConversationMessage.private.is_(False),
                c.id.is_(None),
            )
            .order_by(ConversationMessage.created_at)
            .limit(limit)
        ).all()
        return sum(1 for message, conv in rows if self.queue(db, conv, message))

    def claim(self, limit: int) -> list[Outgoing[PayloadT]]:
        """Lease up to ``limit`` due rows (one more attempt each) and compose them."""
        model, c = self.model, class_mapper(self.model).columns
        now = clock.now()
        with unit_of_work() as db:
            if not is_postgres(db):  # SQLite: the write lock before reading
                db.execute(update(model).where(c.id == "").values(attempts=0))
            stmt = (
                select(model)
                .where(
                    c.status == self.queued,
                    c.next_attempt_at <= now,
                    or_(c.claimed_until.is_(None), c.claimed_until <= now),
                )
                .order_by(c.next_attempt_at, c.id)
                .limit(limit)
            )
            if is_postgres(db):
                stmt = stmt.with_for_update(skip_locked=True)
            out: list[Outgoing[PayloadT]] = []
            for row in db.scalars(stmt):
                row.attempts += 1
                row.claimed_until = now + timedelta(seconds=self.lease_seconds)
                payload = self.compose(db, row)
                if payload is None:
                    row.status, row.last_error = self.failed, "message_gone"
                    continue
                out.append(Outgoing(row.id, payload))
            return out

    def settle(self, row_id: str, failure: DeliveryFailed | None) -> str:
        """Record one send's outcome; the row's status after it (``gone`` when it is no
        longer queued)."""
        with unit_of_work() as db:
            row = db.get(self.model, row_id, with_for_update=True, populate_existing=True)
            if row is None or row.status != self.queued:
                return "gone"
            now = clock.now()
            row.claimed_until = None
            if failure is None:
                row.status, row.sent_at, row.next_attempt_at = self.sent, now, None
                row.last_error = None
            else:
                row.last_error = failure.reason[:200]
                if failure.permanent or row.attempts >= self.max_attempts:
                    row.status, row.next_attempt_at = self.failed, None
                else:
                    row.next_attempt_at = now + backoff(row.attempts)
            return row.status

    def deliver_due(self, limit: int = 50) -> dict[str, int]:
        """Queue unsent answers, then send what is due, each with no transaction open."""
        with unit_of_work() as db:
            self.queue_unsent(db)
        counts = {"sent": 0, "failed": 0, "queued": 0}
        for outgoing in self.claim(limit):
            failure: DeliveryFailed | None = None
            try:
                self.send(outgoing.payload)
            except DeliveryFailed as exc:
                failure = exc
            status = self.settle(outgoing.row_id, failure)
            if status in counts:
                counts[status] += 1
            if failure is not None:
                self.log.warning("%s %s not sent: %s", self.what, outgoing.row_id, failure.reason)
        return counts

    def job(self, db: Session) -> int:
        """The periodic job: the passed unit of work stays unused (delivery must not hold
        a transaction open while talking to the mail server or the platform)."""
        return self.deliver_due()["sent"]

    def register(self) -> Adapter:
        """Register this channel's adapter with ``channels.base``."""
        adapter = Adapter(self.channel, self.queue)
        base.register(adapter)
        return adapter
