"""Notifications: written in the caller's transaction, delivered after it commits.

* :func:`send` writes one ``queued`` row per channel in the caller's transaction, so an
  action that rolls back notifies nobody and a committed one always has its rows.
  Channels the recipient cannot be reached on are skipped (no mobile on the account for
  ``sms``; accounts have no e-mail address yet, so ``email`` is skipped for now).
* :func:`deliver_queued` (run by ``covernet worker`` each round) claims due rows with a
  lease in a short transaction of its own (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
  write lock on SQLite), hands each to its channel's notifier with no transaction open,
  then records ``sent``, another attempt later (``COVERNET_NOTIFY_RETRY_SECONDS``
  doubling, at most an hour) or, after ``COVERNET_NOTIFY_MAX_ATTEMPTS`` or a permanent
  failure, ``failed``.  Delivery is at least once.
* :func:`list_for` / :func:`mark_read` serve the recipient's own inbox.

Other domains call only :func:`send` (and read through :func:`list_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres, unit_of_work
from covernet.core.errors import NotFound, ValidationFailed
from covernet.identity import service as identity
from covernet.notify.models import Channel, Notification, NotificationStatus
from covernet.notify.notifiers import DeliveryFailed, Message, notifier_for

log = logging.getLogger("covernet.notify")

LEASE_SECONDS = 60
BACKOFF_MAX_SECONDS = 3600
DEFAULT_CHANNELS: tuple[str, ...] = (Channel.inbox.value, Channel.sms.value)


def _optional(field_name: str, value: str | None, limit: int) -> str | None:
    text = (value or "").strip()
    if len(text) > limit:
        raise ValidationFailed(
            f"{field_name} is at most {limit} characters",
            code="invalid_notification",
            detail={"field": field_name},
        )
    return text or None


def _text(field_name: str, value: str, limit: int) -> str:
    text = _optional(field_name, value, limit)
    if text is None:
        raise ValidationFailed(
            f"{field_name} is required", code="invalid_notification", detail={"field": field_name}
        )
    return text


def _email_of(user: object) -> str | None:
    """Accounts have no e-mail address yet; once they do, this finds it."""
    email = getattr(user, "email", None)
    return email if isinstance(email, str) and email else None


def _reachable(user: object, channel: str) -> bool:
    if channel == Channel.sms.value:
        return getattr(user, "mobile_enc", None) is not None
    if channel == Channel.email.value:
        return _email_of(user) is not None
    return True


def send(
    db: Session,
    *,
    user_id: str,
    topic: str,
    subject_type: str,
    subject_id: str,
    title: str,
    body: str,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    title_en: str | None = None,
    body_en: str | None = None,
    send_after: datetime | None = None,
) -> list[Notification]:
    """Queue a notification to the account ``user_id`` on each of ``channels`` (in the
    caller's transaction; delivered after it commits).  Returns the rows written (none
    for a channel the recipient cannot be reached on).  ``send_after`` defers delivery
    (e.g. past quiet hours); an inbox row is not listed before then."""
    wanted: list[str] = []
    for channel in channels:
        try:
            value = Channel(channel).value
        except ValueError:
            raise ValidationFailed(
                f"no notification channel '{channel}'",
                code="unknown_channel",
                detail={"field": "channels", "allowed": [c.value for c in Channel]},
            ) from None
        if value not in wanted:
            wanted.append(value)
    clean_title = _text("title", title, 200)
    clean_body = _text("body", body, 2000)
    clean_topic = _text("topic", topic, 64)
    subject = _text("subject_type", subject_type, 32)
    subject_key = _text("subject_id", subject_id, 64)
    user = identity.get_user(db, user_id)
    if user is None:
        raise NotFound("no such account", code="unknown_user", detail={"field": "user_id"})
    now = clock.now()
    rows = [
        Notification(
            user_id=user.id,
            channel=channel,
            topic=clean_topic,
            subject_type=subject,
            subject_id=subject_key,
            title=clean_title,
            body=clean_body,
            title_en=_optional("title_en", title_en, 200),
            body_en=_optional("body_en", body_en, 2000),
            status=NotificationStatus.queued.value,
            attempts=0,
            next_attempt_at=max(now, send_after) if send_after is not None else now,
            created_at=now,
        )
        for channel in wanted
        if _reachable(user, channel)
    ]
    db.add_all(rows)
    db.flush()
    return rows


# Reading ---------------------------------------------------------------------------------


def _due() -> ColumnElement[bool]:
    """Not deferred by ``send_after`` (a retry stays listed)."""
    return or_(
        Notification.attempts > 0,
        Notification.next_attempt_at.is_(None),
        Notification.next_attempt_at <= clock.now(),
    )


def list_for(
    db: Session,
    user_id: str,
    *,
    channel: str = Channel.inbox.value,
    offset: int = 0,
    limit: int = 20,
) -> tuple[list[Notification], int]:
    """The account's own notifications on ``channel``, newest first, and how many."""
    where = (Notification.user_id == user_id, Notification.channel == channel, _due())
    total = db.scalar(select(func.count()).select_from(Notification).where(*where)) or 0
    rows = db.scalars(
        select(Notification)
        .where(*where)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total)


def unread_count(db: Session, user_id: str) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.channel == Channel.inbox.value,
                Notification.read_at.is_(None),
                _due(),
            )
        )
        or 0
    )


def mark_read(db: Session, user_id: str, notification_id: str) -> Notification:
    """Mark one of the account's own notifications read (again: unchanged)."""
    row = db.get(Notification, notification_id)
    if row is None or row.user_id != user_id:
        raise NotFound("no such notification", code="unknown_notification")
    if row.read_at is None:
        row.read_at = clock.now()
        db.flush()
    return row


# Delivery --------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    base = get_settings().notify_retry_seconds
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def _address(db: Session, row: Notification) -> str | None:
    user = identity.get_user(db, row.user_id)
    if user is None:
        return None
    if row.channel == Channel.sms.value:
        return identity.user_mobile(user)
    if row.channel == Channel.email.value:
        return _email_of(user)
    return None


def _claim(limit: int) -> list[Message]:
    now = clock.now()
    with unit_of_work() as db:
        if not is_postgres(db):  # SQLite: the write lock before reading
            db.execute(
                update(Notification)
                .where(Notification.id == "")
                .values(attempts=Notification.attempts)
                .execution_options(synchronize_session=False)
            )
        stmt = (
            select(Notification)
            .where(
                Notification.status == NotificationStatus.queued.value,
                Notification.next_attempt_at <= now,
                or_(Notification.claimed_until.is_(None), Notification.claimed_until <= now),
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        if is_postgres(db):
            stmt = stmt.with_for_update(skip_locked=True)
        messages = []
        for row in db.scalars(stmt):
            row.attempts += 1
            row.claimed_until = now + timedelta(seconds=LEASE_SECONDS)
            messages.append(
                Message(
                    notification_id=row.id,
                    channel=row.channel,
                    user_id=row.user_id,
                    address=_address(db, row),
                    topic=row.topic,
                    title=row.title,
                    body=row.body,
                    title_en=row.title_en,
                    body_en=row.body_en,
                )
            )
        return messages


def _settle(notification_id: str, failure: DeliveryFailed | None) -> str:
    with unit_of_work() as db:
        stmt = select(Notification).where(
            Notification.id == notification_id,
            Notification.status == NotificationStatus.queued.value,
        )
        if is_postgres(db):
            stmt = stmt.with_for_update()
        row = db.scalar(stmt)
        if row is None:
            return "gone"
        now = clock.now()
        row.claimed_until = None
        if failure is None:
            row.status, row.sent_at, row.next_attempt_at = NotificationStatus.sent.value, now, None
            row.last_error = None
            return row.status
        row.last_error = failure.reason[:200]
        if failure.permanent or row.attempts >= get_settings().notify_max_attempts:
            row.status, row.next_attempt_at = NotificationStatus.failed.value, None
        else:
            row.next_attempt_at = now + backoff(row.attempts)
        return row.status


def deliver_queued(limit: int = 50) -> DeliveryReport:
    """Claim up to ``limit`` due notifications and send each through its channel's
    notifier; see the module docstring.  Returns what happened."""
    report = DeliveryReport()
    messages = _claim(limit)
    report.claimed = len(messages)
    for message in messages:
        failure: DeliveryFailed | None = None
        try:
            notifier_for(message.channel).send(message)
        except DeliveryFailed as exc:
            failure = exc
        except Exception as exc:  # a broken notifier must not stop the others
            failure = DeliveryFailed(type(exc).__name__)
        status = _settle(message.notification_id, failure)
        if status == NotificationStatus.sent.value:
            report.sent.append(message.notification_id)
        elif status == NotificationStatus.failed.value:
            report.failed.append(message.notification_id)
            log.warning("notification %s failed: %s", message.notification_id, failure)
        elif status == NotificationStatus.queued.value:
            report.retrying.append(message.notification_id)
    return report
