"""Web chat: the widget on the customer pages (``/ws/chat`` and the REST fallback).
Outbound needs nothing here: the chat fan-out (``consult.chat``) delivers every
committed message to the customer's open sockets, and the history API serves the rest."""

from __future__ import annotations

from sqlalchemy.orm import Session

from covernet.consult.channels import base
from covernet.consult.models import Channel, Conversation, ConversationMessage


class WebChannel:
    name = Channel.web.value

    def send(self, db: Session, conversation: Conversation, message: ConversationMessage) -> None:
        return None  # the socket fan-out is the delivery


base.register(WebChannel())
