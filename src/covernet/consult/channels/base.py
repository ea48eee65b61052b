"""The channel adapter protocol.

A channel (web chat, live-session questions, later the official-account webhook,
email, phone) does two things: it turns what arrives on it into an
:class:`Inbound` (who, what, which conversation it continues) and it sends the
desk's public answers back out over itself.  Everything else — conversations,
priority, routing, licenses, history — is the same for all of them
(``consult.service``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from covernet.consult.models import Conversation, ConversationMessage


@dataclass(frozen=True)
class Inbound:
    """A message arriving on a channel, normalised."""

    channel: str
    body: str
    customer_id: str | None = None
    visitor_id: str | None = None  # the channel's own id of an unknown sender
    external_id: str | None = None  # the channel's message id (for de-duplication)
    product_code: str | None = None
    subject: str | None = None


class ChannelAdapter(Protocol):
    name: str

    def send(self, db: Session, conversation: Conversation, message: ConversationMessage) -> None:
        """Deliver a public desk message to the customer over this channel (in the
        caller's transaction: through the outbox or notifications, after commit)."""


_ADAPTERS: dict[str, ChannelAdapter] = {}


def register(adapter: ChannelAdapter) -> ChannelAdapter:
    _ADAPTERS[adapter.name] = adapter
    return adapter


def adapter_for(channel: str) -> ChannelAdapter | None:
    return _ADAPTERS.get(channel)


def send_out(db: Session, conversation: Conversation, message: ConversationMessage) -> None:
    """Hand a public desk message to its conversation's channel."""
    if message.private:
        return
    adapter = adapter_for(conversation.channel)
    if adapter is not None:
        adapter.send(db, conversation, message)
