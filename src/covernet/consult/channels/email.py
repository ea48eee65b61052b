"""E-mail into the desk and the desk's answers out by e-mail.

Inbound: the mail provider POSTs each mail as JSON to
``POST /api/v1/channels/email/inbound`` (``message_id, from, to, subject, text,
in_reply_to, references``), signed like partner events (``partners.signing``: hex
HMAC-SHA256 over ``"<timestamp>.<raw body>"``, the window
``COVERNET_PARTNER_EVENT_WINDOW_SECONDS``) with the secret configured for the signer
``email-inbound`` in ``COVERNET_PARTNER_SECRETS``.  A mail is kept once by its
Message-ID (a redelivery answers the first result with ``duplicate``).

Threading: a mail whose ``In-Reply-To``/``References`` names a mail of a conversation,
or whose subject carries the conversation's tag ``[#<id>]``, lands in that conversation
when it comes from the same address; otherwise it opens a new ``email`` conversation.
Accounts hold no e-mail address, so the sender is a visitor: the address is stored only
encrypted (``core.crypto``) and masked.

Outbound: a public advisor message in an e-mail conversation is queued as an outbound
``desk_emails`` row (:data:`EmailChannel` for ``channels.base.send_out``, and
:func:`queue_unsent` for answers written anywhere), and :func:`deliver_due` sends the
queue over SMTP (``COVERNET_SMTP_*``) after the transaction committed, threaded
(``In-Reply-To``, ``References``, the subject tag) and signed with the name, institution
and 执业证编号 stored on the message (R2).
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.consult import service
from covernet.consult.appointment_models import (
    EMAIL_ADDRESS_CONTEXT,
    DeskEmail,
    EmailDirection,
    EmailStatus,
)
from covernet.consult.channels import delivery
from covernet.consult.models import (
    Channel,
    Conversation,
    ConversationMessage,
)
from covernet.core import clock
from covernet.core.bodies import parse_json_body
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.db import unit_of_work
from covernet.core.errors import ValidationFailed
from covernet.core.ids import new_id
from covernet.core.masking import mask_email
from covernet.notify import notifiers
from covernet.partners import signing

log = logging.getLogger("covernet.consult.email")

SIGNER = "email-inbound"  # its secret: COVERNET_PARTNER_SECRETS["email-inbound"]
MAX_INBOUND_BYTES = 256 * 1024
TAG = re.compile(r"\[#([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]", re.I)
MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class InboundMail(BaseModel):
    """A mail as the provider's inbound-parse webhook posts it."""

    model_config = ConfigDict(populate_by_name=True)

    message_id: str = Field(min_length=3, max_length=255)
    from_: str = Field(alias="from", min_length=3, max_length=320)
    to: str = Field(default="", max_length=320)
    subject: str = Field(default="", max_length=300)
    text: str = Field(default="", max_length=200_000)
    in_reply_to: str | None = Field(default=None, max_length=255)
    references: str | None = Field(default=None, max_length=8000)


@dataclass(frozen=True)
class Received:
    conversation_id: str
    message_id: str
    threaded: bool
    duplicate: bool = False

    def out(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "threaded": self.threaded,
            "duplicate": self.duplicate,
        }


def _address(raw: str) -> str:
    _, addr = email.utils.parseaddr(raw)
    addr = addr.strip().lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain:
        raise ValidationFailed(
            "the sender is not an e-mail address", code="bad_sender", detail={"field": "from"}
        )
    return addr


def _index(address: str) -> str:
    return get_blind_index().digest(address, context=EMAIL_ADDRESS_CONTEXT)


def _ids(*values: str | None) -> list[str]:
    found: list[str] = []
    for value in values:
        for mid in MESSAGE_ID.findall(value or ""):
            if mid not in found:
                found.append(mid)
    return found


def _body(mail: InboundMail) -> str:
    """The new text of the mail: quoted lines (``>``) and the quote header dropped."""
    lines = []
    for line in mail.text.replace("\r\n", "\n").split("\n"):
        if line.startswith(">"):
            continue
        lines.append(line)
    text = "\n".join(lines).strip()
    text = re.split(r"\n(?:On .+ wrote:|.*写道[:：])\s*$", text, maxsplit=1, flags=re.M)[0]
    text = text.strip()[: service.MAX_BODY]
    if not text:
        raise ValidationFailed("the mail has no text", code="empty_mail", detail={"field": "text"})
    return text


def _thread(db: Session, mail: InboundMail, sender_index: str) -> Conversation | None:
    """The conversation this mail continues: by the Message-IDs it answers, else by the
    subject's tag; only a conversation this address wrote in or was written to."""
    candidates: list[str] = []
    ids = _ids(mail.in_reply_to, mail.references)
    if ids:
        rows = db.scalars(select(DeskEmail.conversation_id).where(DeskEmail.message_id.in_(ids)))
        candidates.extend(rows)
    tag = TAG.search(mail.subject)
    if tag:
        candidates.append(tag.group(1).lower())
    for conv_id in candidates:
        same_sender = db.scalar(
            select(DeskEmail.id)
            .where(DeskEmail.conversation_id == conv_id, DeskEmail.address_index == sender_index)
            .limit(1)
        )
        conv = db.get(Conversation, conv_id) if same_sender else None
        if conv is not None and conv.channel == Channel.email.value:
            while conv.merged_into_id:
                merged = db.get(Conversation, conv.merged_into_id)
                if merged is None:
                    break
                conv = merged
            return conv
    return None


def receive(db: Session, mail: InboundMail) -> Received:
    """Add one inbound mail to its conversation (or open one); once per Message-ID."""
    mid = mail.message_id.strip()
    known = db.scalar(select(DeskEmail).where(DeskEmail.message_id == mid))
    if known is not None:
        return Received(known.conversation_id, mid, threaded=False, duplicate=True)
    address = _address(mail.from_)
    sender_index = _index(address)
    text = _body(mail)
    subject = TAG.sub("", mail.subject).strip()
    subject = re.sub(r"^(?:(?:re|fw|fwd|回复|转发)\s*[:：]\s*)+", "", subject, flags=re.I)
    conv = _thread(db, mail, sender_index)
    if conv is not None:
        caller = service.Caller(customer_id=conv.customer_id, visitor_id=conv.visitor_id)
        message = service.customer_message(db, caller, conv.id, text, channel=Channel.email.value)
        threaded = True
    else:
        caller = service.Caller(visitor_id=new_id())
        conv, message = service.start(
            db, caller, channel=Channel.email.value, body=text, subject=subject or None
        )
        threaded = False
    db.add(
        DeskEmail(
            conversation_id=message.conversation_id,
            direction=EmailDirection.inbound.value,
            message_id=mid,
            desk_message_id=message.id,
            address_enc=get_cipher().encrypt(address, context=EMAIL_ADDRESS_CONTEXT),
            address_masked=mask_email(address),
            address_index=sender_index,
            subject=(mail.subject or subject)[:300],
            in_reply_to=(mail.in_reply_to or None),
            status=EmailStatus.received.value,
            created_at=clock.now(),
        )
    )
    db.flush()
    return Received(message.conversation_id, mid, threaded=threaded)


def receive_signed(headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """Verify, parse and keep one inbound mail in a unit of work of its own (a
    concurrent redelivery of the same Message-ID is answered as a duplicate)."""
    if len(raw) > MAX_INBOUND_BYTES:
        raise ValidationFailed(
            f"an inbound mail is at most {MAX_INBOUND_BYTES} bytes", code="mail_too_large"
        )
    signing.verify(SIGNER, headers, raw)
    mail = parse_json_body(InboundMail, raw)
    for attempt in range(2):
        try:
            with unit_of_work() as db:
                return receive(db, mail).out()
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


# Outbound ------------------------------------------------------------------------------


def _domain() -> str:
    _, sender = email.utils.parseaddr(get_settings().smtp_sender)
    return sender.rpartition("@")[2] or "covernet.local"


def tag_of(conversation_id: str) -> str:
    return f"[#{conversation_id}]"


def masked_address(db: Session, conversation_id: str) -> str | None:
    """The customer's address as staff see it (masked)."""
    last_in = QUEUE.latest_inbound(db, conversation_id)
    return last_in.address_masked if last_in else None


def _outbound(
    conversation: Conversation, message: ConversationMessage, last_in: DeskEmail
) -> DeskEmail:
    """The answer as an e-mail to the customer's latest address."""
    subject = TAG.sub("", conversation.subject).strip()
    now = clock.now()
    return DeskEmail(
        conversation_id=conversation.id,
        direction=EmailDirection.outbound.value,
        message_id=f"<{message.id}@{_domain()}>",
        desk_message_id=message.id,
        address_enc=last_in.address_enc,
        address_masked=last_in.address_masked,
        address_index=last_in.address_index,
        subject=f"Re: {subject} {tag_of(conversation.id)}"[:300],
        in_reply_to=last_in.message_id,
        status=EmailStatus.queued.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def signature(message: ConversationMessage) -> str:
    """The R2 block under every answer: name, institution, 执业证编号."""
    lines = ["--", message.advisor_name or "-"]
    if message.advisor_institution:
        lines.append(message.advisor_institution)
    if message.advisor_license_no:
        lines.append(f"执业证编号 / License No.: {message.advisor_license_no}")
    return "\n".join(lines)


def _compose(db: Session, row: DeskEmail) -> EmailMessage | None:
    message = db.get(ConversationMessage, row.desk_message_id) if row.desk_message_id else None
    if message is None:
        return None
    references = list(
        db.scalars(
            select(DeskEmail.message_id)
            .where(DeskEmail.conversation_id == row.conversation_id, DeskEmail.id != row.id)
            .order_by(DeskEmail.created_at, DeskEmail.id)
        )
    )[-20:]
    mail = EmailMessage()
    mail["From"] = get_settings().smtp_sender
    mail["To"] = get_cipher().decrypt(row.address_enc, context=EMAIL_ADDRESS_CONTEXT)
    mail["Subject"] = row.subject
    mail["Message-ID"] = row.message_id
    mail["Date"] = email.utils.format_datetime(clock.now())
    if row.in_reply_to:
        mail["In-Reply-To"] = row.in_reply_to
    if references:
        mail["References"] = " ".join(references)
    mail.set_content(f"{message.body}\n\n{signature(message)}\n")
    return mail


def _send(mail: EmailMessage) -> None:
    notifiers.send_mail(mail)


QUEUE = delivery.Queue(
    DeskEmail, Channel.email.value, EmailStatus, _outbound, _compose, _send, log, "desk e-mail"
)
queue = QUEUE.queue  # a public advisor answer as an e-mail, in the caller's transaction
deliver_due = QUEUE.deliver_due  # queue unsent answers, send what is due (no transaction open)
delivery_job = QUEUE.job  # the periodic job
queue_unsent = QUEUE.queue_unsent  # answers written anywhere, queued when not yet
EmailChannel = QUEUE.register()  # for channels.base.send_out


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt stored addresses under the active key."""
    from covernet.core.rotation import rotate_column

    return rotate_column(db, DeskEmail.id, DeskEmail.address_enc, context=EMAIL_ADDRESS_CONTEXT)
