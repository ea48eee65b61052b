"""The official-account channel: the platform's callback into the desk and the desk's
answers out through the customer-service message API.

Inbound: the platform calls ``/api/v1/channels/wechat/callback`` with ``signature``,
``timestamp`` and ``nonce`` in the query: ``signature`` is the hex SHA-1 of the sorted
concatenation of (``COVERNET_WECHAT_TOKEN``, timestamp, nonce).  ``GET`` is the URL
verification (answered with ``echostr``); ``POST`` carries one message as XML.  Without
a token configured the callback answers 403; a bad signature or a timestamp outside
``COVERNET_PARTNER_EVENT_WINDOW_SECONDS`` 401.  The XML is parsed by the standard
library only after it is signed, at most :data:`MAX_INBOUND_BYTES`, and refused when it
carries any declaration (``<!DOCTYPE``, ``<!ENTITY``): no entity is ever expanded.

A message is kept once by its ``MsgId`` (an event, which has none, by a keyed hash of
sender, time and event): a replay answers ``success`` and writes nothing.  Text goes
into the sender's open ``wechat`` conversation or opens one; the sender is a visitor,
its openid stored only encrypted (``core.crypto``), found by a blind index and shown
masked.  Other kinds follow :data:`KINDS`.

Outbound: a public advisor message in a ``wechat`` conversation is queued in the same
transaction (:data:`WechatChannel`, and :func:`queue_unsent` for answers written
anywhere); :func:`deliver_due` hands it after commit to the :class:`WechatSender` — the
sandbox one records the JSON the customer-service API would get (``touser``, ``msgtype``
``text``, ``text.content`` with the R2 signature) — with a lease, attempts and backoff.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.consult import service
from covernet.consult.channels import delivery
from covernet.consult.channels.email import signature
from covernet.consult.models import (
    ACTIVE_STATES,
    Channel,
    Conversation,
    ConversationMessage,
)
from covernet.consult.wechat_models import (
    OPENID_CONTEXT,
    DeskWechatMessage,
    WechatDirection,
    WechatStatus,
)
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.db import unit_of_work
from covernet.core.errors import Forbidden, Unauthenticated, ValidationFailed
from covernet.core.ids import new_id
from covernet.notify.notifiers import DeliveryFailed

log = logging.getLogger("covernet.consult.wechat")

MAX_INBOUND_BYTES = 64 * 1024
SUCCESS = "success"  # what the platform expects back

# What each kind of message does: "text" goes into the conversation, "note" leaves a
# system note in the sender's open conversation (the desk reads only text here), and
# "ignore" is only kept for de-duplication.
Action = Literal["text", "note", "ignore"]
KINDS: dict[str, tuple[Action, str]] = {
    "text": ("text", ""),
    "image": ("note", "图片"),
    "voice": ("note", "语音"),
    "video": ("note", "视频"),
    "shortvideo": ("note", "小视频"),
    "location": ("note", "位置"),
    "link": ("note", "链接"),
    "event": ("ignore", ""),  # subscribe, unsubscribe, menu clicks, …
}


# Signatures --------------------------------------------------------------------------


def sign(token: str, timestamp: str, nonce: str) -> str:
    joined = "".join(sorted((token, timestamp, nonce))).encode()
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 - the platform's signature scheme


def signed_query(
    token: str, *, timestamp: int | None = None, nonce: str = "n0nce"
) -> dict[str, str]:
    """The query a platform callback carries (for tests and examples)."""
    stamp = str(int(clock.now().timestamp()) if timestamp is None else timestamp)
    return {"signature": sign(token, stamp, nonce), "timestamp": stamp, "nonce": nonce}


def verify(signature_: str, timestamp: str, nonce: str) -> None:
    """Raise unless the callback was signed just now with the configured token."""
    settings = get_settings()
    token = settings.wechat_token
    if not token:
        raise Forbidden("the official-account channel is not configured", code="wechat_disabled")
    timestamp, nonce = timestamp.strip(), nonce.strip()
    if not timestamp.isdigit() or not nonce or not signature_:
        raise Unauthenticated(
            "the callback is not signed",
            code="signature_missing",
            detail={"query": ["signature", "timestamp", "nonce"]},
        )
    expected = sign(token, timestamp, nonce)
    if not hmac.compare_digest(expected.encode(), signature_.strip().lower().encode()):
        raise Unauthenticated("the callback's signature does not verify", code="signature_invalid")
    window = settings.partner_event_window_seconds
    if abs(clock.now().timestamp() - int(timestamp)) > window:
        raise Unauthenticated(
            "the callback's timestamp is outside the accepted window",
            code="stale_event",
            detail={"window_seconds": window},
        )


def verify_url(signature_: str, timestamp: str, nonce: str, echostr: str) -> str:
    """The platform's URL verification: ``echostr`` back when the signature holds."""
    verify(signature_, timestamp, nonce)
    return echostr


# Inbound -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    to_user: str
    from_user: str
    create_time: str
    msg_type: str
    content: str = ""
    msg_id: str = ""
    event: str = ""

    def __repr__(self) -> str:  # never show the openid
        return f"InboundMessage({self.msg_type!r}, {self.msg_id!r})"


def parse(raw: bytes) -> InboundMessage:
    """One callback body, refused when it is too large, declares anything or is not
    the platform's ``<xml>`` message."""
    if len(raw) > MAX_INBOUND_BYTES:
        raise ValidationFailed(
            f"a callback is at most {MAX_INBOUND_BYTES} bytes", code="message_too_large"
        )
    if b"<!" in raw.replace(b"<![CDATA[", b""):
        raise ValidationFailed(
            "the message must not carry a DOCTYPE or other declaration", code="xml_refused"
        )
    try:
        # no declaration got this far, so no entity can be defined or expanded
        root = ET.fromstring(raw)  # noqa: S314
    except ET.ParseError as exc:
        raise ValidationFailed("the message is not well-formed XML", code="bad_xml") from exc
    if root.tag != "xml":
        raise ValidationFailed("the message's root element is not <xml>", code="bad_xml")

    def text(tag: str, limit: int) -> str:
        value = (root.findtext(tag) or "").strip()
        return value[:limit]

    msg = InboundMessage(
        to_user=text("ToUserName", 64),
        from_user=text("FromUserName", 64),
        create_time=text("CreateTime", 16),
        msg_type=text("MsgType", 16).lower(),
        content=(root.findtext("Content") or "").strip()[: service.MAX_BODY],
        msg_id=text("MsgId", 64),
        event=text("Event", 32).lower(),
    )
    missing = [
        name
        for name, value in (
            ("FromUserName", msg.from_user),
            ("CreateTime", msg.create_time),
            ("MsgType", msg.msg_type),
        )
        if not value
    ]
    if missing:
        raise ValidationFailed(
            "the message lacks required fields", code="bad_message", detail={"fields": missing}
        )
    return msg


def _index(openid: str) -> str:
    return get_blind_index().digest(openid, context=OPENID_CONTEXT)


def mask_openid(openid: str) -> str:
    """``oUpF8uMuAJO_M2pxb1Q9zNjWeS6o`` -> ``oUpF****eS6o``."""
    if len(openid) <= 8:
        return "*" * len(openid)
    return f"{openid[:4]}****{openid[-4:]}"


def _key(msg: InboundMessage) -> str:
    if msg.msg_id:
        return msg.msg_id
    value = f"{msg.from_user}|{msg.create_time}|{msg.msg_type}|{msg.event}"
    return "evt:" + get_blind_index().digest(value, context=OPENID_CONTEXT)


def _open_conversation(db: Session, sender_index: str) -> Conversation | None:
    """The sender's latest active ``wechat`` conversation (followed through merges)."""
    rows = db.scalars(
        select(Conversation)
        .join(DeskWechatMessage, DeskWechatMessage.conversation_id == Conversation.id)
        .where(
            DeskWechatMessage.openid_index == sender_index,
            DeskWechatMessage.direction == WechatDirection.inbound.value,
            Conversation.channel == Channel.wechat.value,
        )
        .order_by(DeskWechatMessage.created_at.desc(), DeskWechatMessage.id.desc())
        .limit(20)
    )
    for conv in rows:
        current: Conversation | None = conv
        while current is not None and current.merged_into_id:
            current = db.get(Conversation, current.merged_into_id)
        if current is not None and current.state in ACTIVE_STATES:
            return current
    return None


def _visitor_of(db: Session, sender_index: str) -> str:
    """The visitor id this openid had before (one visitor per openid), else a new one."""
    found = db.scalar(
        select(Conversation.visitor_id)
        .join(DeskWechatMessage, DeskWechatMessage.conversation_id == Conversation.id)
        .where(
            DeskWechatMessage.openid_index == sender_index,
            Conversation.visitor_id.is_not(None),
        )
        .order_by(DeskWechatMessage.created_at)
        .limit(1)
    )
    return found or new_id()


@dataclass(frozen=True)
class Received:
    action: str
    conversation_id: str | None
    duplicate: bool = False


def receive(db: Session, msg: InboundMessage) -> Received:
    """Keep one callback message (once per key) and act on it per :data:`KINDS`."""
    key = _key(msg)
    known = db.scalar(select(DeskWechatMessage).where(DeskWechatMessage.msg_key == key))
    if known is not None:
        return Received("duplicate", known.conversation_id, duplicate=True)
    action, label = KINDS.get(msg.msg_type, ("ignore", ""))
    sender_index = _index(msg.from_user)
    conv = _open_conversation(db, sender_index)
    desk_message: ConversationMessage | None = None
    if action == "text" and not msg.content:
        action = "ignore"
    if action == "text":
        if conv is not None:
            caller = service.Caller(customer_id=conv.customer_id, visitor_id=conv.visitor_id)
            desk_message = service.customer_message(
                db, caller, conv.id, msg.content, channel=Channel.wechat.value
            )
        else:
            caller = service.Caller(visitor_id=_visitor_of(db, sender_index))
            conv, desk_message = service.start(
                db, caller, channel=Channel.wechat.value, body=msg.content
            )
    elif action == "note" and conv is not None:
        desk_message = service.add_system_message(
            db,
            conv,
            f"客户通过公众号发来一条{label}消息，此渠道只转交文字。",
            purpose="wechat_media",
        )
    else:
        action = "ignore"
    db.add(
        DeskWechatMessage(
            conversation_id=desk_message.conversation_id if desk_message else None,
            direction=WechatDirection.inbound.value,
            msg_key=key,
            msg_type=msg.msg_type[:16],
            desk_message_id=desk_message.id if desk_message else None,
            openid_enc=get_cipher().encrypt(msg.from_user, context=OPENID_CONTEXT),
            openid_masked=mask_openid(msg.from_user),
            openid_index=sender_index,
            status=(WechatStatus.received if desk_message else WechatStatus.ignored).value,
            created_at=clock.now(),
        )
    )
    db.flush()
    return Received(action, desk_message.conversation_id if desk_message else None)


def receive_signed(signature_: str, timestamp: str, nonce: str, raw: bytes) -> str:
    """Verify, parse and keep one callback in a unit of work of its own (a concurrent
    redelivery of the same MsgId is a duplicate); ``success`` for the platform."""
    verify(signature_, timestamp, nonce)
    msg = parse(raw)
    for attempt in range(2):
        try:
            with unit_of_work() as db:
                receive(db, msg)
                return SUCCESS
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def masked_openid(db: Session, conversation_id: str) -> str | None:
    """The customer's openid as staff see it (masked)."""
    last_in = QUEUE.latest_inbound(db, conversation_id)
    return last_in.openid_masked if last_in else None


# Outbound ----------------------------------------------------------------------------


class WechatSender(Protocol):
    def send(self, payload: dict[str, Any]) -> None:
        """POST one customer-service message; raise ``DeliveryFailed`` when refused."""


@dataclass
class SandboxSender:
    """Behaves like the customer-service message API without leaving the process:
    records each JSON body it would POST; ``fail_next`` makes the next calls fail."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    fail_reason: str = "errcode 45047: out of response count limit"

    def send(self, payload: dict[str, Any]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise DeliveryFailed(self.fail_reason)
        self.sent.append(copy.deepcopy(payload))


_sender: WechatSender = SandboxSender()


def get_sender() -> WechatSender:
    return _sender


def set_sender(sender: WechatSender) -> WechatSender:
    """Use ``sender`` from now on; returns the previous one."""
    global _sender
    previous, _sender = _sender, sender
    return previous


def _outbound(
    conversation: Conversation, message: ConversationMessage, last_in: DeskWechatMessage
) -> DeskWechatMessage:
    """The answer as a text message to the conversation's latest sender."""
    now = clock.now()
    return DeskWechatMessage(
        conversation_id=conversation.id,
        direction=WechatDirection.outbound.value,
        msg_key=f"out:{message.id}",
        msg_type="text",
        desk_message_id=message.id,
        openid_enc=last_in.openid_enc,
        openid_masked=last_in.openid_masked,
        openid_index=last_in.openid_index,
        status=WechatStatus.queued.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def _compose(db: Session, row: DeskWechatMessage) -> dict[str, Any] | None:
    message = db.get(ConversationMessage, row.desk_message_id) if row.desk_message_id else None
    if message is None:
        return None
    return {
        "touser": get_cipher().decrypt(row.openid_enc, context=OPENID_CONTEXT),
        "msgtype": "text",
        "text": {"content": f"{message.body}\n\n{signature(message)}"},
    }


def _send(payload: dict[str, Any]) -> None:
    get_sender().send(payload)


QUEUE = delivery.Queue(
    DeskWechatMessage,
    Channel.wechat.value,
    WechatStatus,
    _outbound,
    _compose,
    _send,
    log,
    "desk wechat message",
)
queue = QUEUE.queue
deliver_due = QUEUE.deliver_due  # queue unsent answers, send what is due (no transaction open)
delivery_job = QUEUE.job  # the periodic job
queue_unsent = QUEUE.queue_unsent  # answers written anywhere, queued when not yet
WechatChannel = QUEUE.register()  # for channels.base.send_out


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt stored openids under the active key."""
    from covernet.core.rotation import rotate_column

    return rotate_column(
        db, DeskWechatMessage.id, DeskWechatMessage.openid_enc, context=OPENID_CONTEXT
    )
