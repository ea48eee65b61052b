"""Chat fan-out: a message is written to the database first and told to the open
WebSockets after its transaction commits, in every app process.

* PostgreSQL: :func:`announce` runs ``pg_notify`` inside the writing transaction, so
  the server delivers it only if (and when) that transaction commits; every process
  holds one ``LISTEN`` connection (psycopg, async), opened when its first socket
  attaches, and hands each notification to its own sockets.
* SQLite (one process): the announcement waits in the session until ``after_commit``
  and then goes to the in-process hub.

A notification carries only ids; each process reads the message once and gives every
socket what it may see (private notes only to the desk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from covernet.core.db import is_postgres

log = logging.getLogger("covernet.consult.chat")

PG_CHANNEL = "covernet_desk"
PENDING_KEY = "consult_announcements"
LISTENING_KEY = "consult_hooks"


def announce(db: Session, payload: dict[str, Any]) -> None:
    """Tell every process's sockets about ``payload`` once the transaction commits."""
    if is_postgres(db):
        db.execute(select(func.pg_notify(PG_CHANNEL, json.dumps(payload))))
        return
    if not db.info.get(LISTENING_KEY):  # the session's hooks, once (sessions are short)
        db.info[LISTENING_KEY] = True
        event.listen(db, "after_commit", _after_commit)
        event.listen(db, "after_rollback", _after_rollback)
    db.info.setdefault(PENDING_KEY, []).append(payload)


def _after_commit(db: Session) -> None:
    for payload in db.info.pop(PENDING_KEY, None) or []:
        HUB.publish_threadsafe(payload)


def _after_rollback(db: Session) -> None:
    db.info.pop(PENDING_KEY, None)


# The hub: the sockets of this process ---------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    """One open socket.  ``staff`` sockets see private notes; ``desk`` sockets also get
    inbox changes of the conversations ``may_see`` admits."""

    staff: bool
    desk: bool = False
    conversations: set[str] = field(default_factory=set)
    may_see: Callable[[dict[str, Any]], bool] = lambda _conv: False
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(256))

    def put(self, item: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a stuck socket loses, the others not
            self.queue.put_nowait(item)


Loader = Callable[[dict[str, Any]], dict[str, Any] | None]


class Hub:
    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.database_url: str | None = None
        self.listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def attach(self, sub: Subscriber) -> None:
        """Add a socket; on PostgreSQL make sure this process listens (waits for it)."""
        from covernet.core.config import get_settings

        loop = asyncio.get_running_loop()
        url = get_settings().database_url
        if loop is not self.loop or url != self.database_url:  # a new app/loop (tests)
            self._reset(loop, url)
        self.subscribers.add(sub)
        if make_url(url).get_backend_name() == "postgresql":
            if self.listener is None or self.listener.done():
                self.listening = asyncio.Event()
                self.listener = loop.create_task(self._listen(url))
            await asyncio.wait_for(self.listening.wait(), timeout=10)

    def detach(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _reset(self, loop: asyncio.AbstractEventLoop, url: str) -> None:
        if self.listener is not None and not self.listener.done():
            with contextlib.suppress(RuntimeError):
                self.listener.cancel()
        self.subscribers, self.loop, self.database_url, self.listener = set(), loop, url, None

    async def _listen(self, url: str) -> None:
        import psycopg

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PG_CHANNEL}")
                    self.listening.set()
                    async for note in conn.notifies():
                        with contextlib.suppress(ValueError):
                            await self.deliver(json.loads(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: listen again shortly
                log.warning("desk listener: %s; reconnecting", type(exc).__name__)
                await asyncio.sleep(1)

    def publish_threadsafe(self, payload: dict[str, Any]) -> None:
        """From any thread of this process (SQLite's after-commit)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not self.subscribers:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lambda: loop.create_task(self.deliver(payload)))

    async def deliver(self, payload: dict[str, Any]) -> None:
        conversation_id = payload.get("conversation_id")
        if not isinstance(conversation_id, str) or not self.subscribers:
            return
        watching = [s for s in self.subscribers if conversation_id in s.conversations]
        desks = [s for s in self.subscribers if s.desk]
        if not watching and not desks:
            return
        from fastapi.concurrency import run_in_threadpool

        loaded = await run_in_threadpool(_load, payload)
        if loaded is None:
            return  # another schema's conversation (shared server) or gone
        conv, message = loaded.get("conversation"), loaded.get("message")
        for sub in watching:
            if message is not None and (sub.staff or not message["private"]):
                sub.put({"type": "message", "message": message})
            elif message is None and conv is not None:
                sub.put({"type": "conversation", "conversation": _public_conv(conv, sub.staff)})
        for sub in desks:
            if conv is not None and sub.may_see(conv):
                sub.put({"type": "inbox", "conversation": conv})


def _public_conv(conv: dict[str, Any], staff: bool) -> dict[str, Any]:
    if staff:
        return conv
    return {k: conv[k] for k in ("id", "state", "channel", "csat_given")}


def _load(payload: dict[str, Any]) -> dict[str, Any] | None:
    from covernet.consult import api
    from covernet.consult.models import Conversation, ConversationMessage
    from covernet.core.db import unit_of_work

    with unit_of_work() as db:
        conv = db.get(Conversation, payload["conversation_id"])
        if conv is None:
            return None
        out: dict[str, Any] = {"conversation": api.conversation_event(db, conv)}
        message_id = payload.get("message_id")
        if isinstance(message_id, str):
            message = db.get(ConversationMessage, message_id)
            if message is None:
                return None
            out["message"] = api.message_out(message).model_dump(mode="json")
        return out


HUB = Hub()
