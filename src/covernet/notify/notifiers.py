"""How a notification leaves: one :class:`Notifier` per channel.

* ``inbox``: the stored row is the message the recipient reads in the app; sending it
  only marks it sent.
* ``sms``: ``COVERNET_SMS_NOTIFIER`` names the adapter; ``sandbox`` (the default)
  records what it would send in ``sandbox_sms``, the number encrypted and masked, and
  logs only the masked number.  Real gateways register with :func:`register`.
* ``email``: SMTP through the standard library (``COVERNET_SMTP_HOST``, ``…_PORT``,
  ``…_SENDER``, ``…_USERNAME``/``…_PASSWORD``, ``…_STARTTLS``).

A notifier is called with no database transaction of the caller's open; it returns when
the message is handed over, or raises :class:`DeliveryFailed` (``permanent`` when
retrying cannot help).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

from covernet.core.config import get_settings
from covernet.core.crypto import get_cipher
from covernet.core.db import unit_of_work
from covernet.core.masking import mask_mobile
from covernet.notify.models import SANDBOX_MOBILE_CONTEXT, Channel, SandboxSms

log = logging.getLogger("covernet.notify")

SMTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Message:
    """A notification ready to send.  ``address`` (decrypted mobile, e-mail address) is
    held only in memory and must never be logged in clear."""

    notification_id: str
    channel: str
    user_id: str
    address: str | None
    topic: str
    title: str
    body: str
    title_en: str | None = None
    body_en: str | None = None

    def __repr__(self) -> str:  # never show the address
        return f"Message({self.notification_id!r}, {self.channel!r}, {self.topic!r})"


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Notifier(Protocol):
    channel: str

    def send(self, message: Message) -> None:
        """Hand the message over; raise :class:`DeliveryFailed` if it could not be."""
        ...


class InboxNotifier:
    channel = Channel.inbox.value

    def send(self, message: Message) -> None:
        return None


def sms_text(message: Message) -> str:
    return f"【Covernet】{message.title}：{message.body}"


class SandboxSmsNotifier:
    """Sends nothing: records the message (number encrypted) so tests and demos see it."""

    channel = Channel.sms.value

    def send(self, message: Message) -> None:
        if not message.address:
            raise DeliveryFailed("no_mobile", permanent=True)
        masked = mask_mobile(message.address)
        with unit_of_work() as db:
            db.add(
                SandboxSms(
                    notification_id=message.notification_id,
                    mobile_enc=get_cipher().encrypt(
                        message.address, context=SANDBOX_MOBILE_CONTEXT
                    ),
                    mobile_masked=masked,
                    text=sms_text(message),
                )
            )
        log.info("sandbox sms %s to %s", message.notification_id, masked)


class SmtpNotifier:
    channel = Channel.email.value

    def send(self, message: Message) -> None:
        if not message.address:
            raise DeliveryFailed("no_email_address", permanent=True)
        settings = get_settings()
        mail = EmailMessage()
        mail["From"] = settings.smtp_sender
        mail["To"] = message.address
        mail["Subject"] = message.title
        text = message.body
        if message.title_en and message.body_en:
            text += f"\n\n---\n{message.title_en}\n{message.body_en}"
        mail.set_content(text)
        send_mail(mail)


def send_mail(mail: EmailMessage) -> None:
    """Hand one message to the configured SMTP server (``COVERNET_SMTP_*``); a refused
    recipient is a permanent failure, anything else a retryable one."""
    settings = get_settings()
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("recipient_refused", permanent=True) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(type(exc).__name__) from None


_factories: dict[tuple[str, str], Callable[[], Notifier]] = {
    (Channel.inbox.value, "inbox"): InboxNotifier,
    (Channel.sms.value, "sandbox"): SandboxSmsNotifier,
    (Channel.email.value, "smtp"): SmtpNotifier,
}


def register(channel: str, name: str, factory: Callable[[], Notifier]) -> None:
    """Make a notifier available for ``channel`` under ``name`` (SMS: the name
    ``COVERNET_SMS_NOTIFIER`` selects)."""
    _factories[(Channel(channel).value, name)] = factory


def configured_name(channel: str) -> str:
    if channel == Channel.sms.value:
        return get_settings().sms_notifier
    return "inbox" if channel == Channel.inbox.value else "smtp"


def notifier_for(channel: str) -> Notifier:
    factory = _factories.get((channel, configured_name(channel)))
    if factory is None:
        raise DeliveryFailed(f"no notifier for {channel}")
    return factory()


def rotate_field_keys(db: Any) -> int:
    """Re-encrypt the sandbox SMS gateway's numbers under the active key (``db``: a
    Session)."""
    from covernet.core.rotation import rotate_column

    return rotate_column(db, SandboxSms.id, SandboxSms.mobile_enc, context=SANDBOX_MOBILE_CONTEXT)
