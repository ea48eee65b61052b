"""Attribution: which share link a visit, sign-up, quote or purchase came through.

The HTTP layer reads the visitor's signed ``covernet_share`` cookie (or an explicit
share code) and hands the code over with :func:`using`; domain services call
:func:`record` with the event and its subject, so they never touch HTTP. An event is
credited to the link it came through (depth 1) and to each link up its chain of sharers
(depth 2, 3, … up to ``COVERNET_SHARE_MAX_DEPTH``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator
from contextvars import ContextVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.core.config import get_settings
from covernet.social.link_models import EventKind, ShareEvent, ShareLink

COOKIE = "covernet_share"
_current: ContextVar[str | None] = ContextVar("covernet_share_code", default=None)


def _mac(payload: str) -> str:
    key = get_settings().secret_key.encode()
    digest = hmac.new(key, b"share-attribution\x00" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def sign(code: str, *, now: float | None = None) -> str:
    """The cookie value: ``code.issued.mac`` (the MAC binds both)."""
    payload = f"{code}.{int(now if now is not None else time.time())}"
    return f"{payload}.{_mac(payload)}"


def verify(token: str | None, *, now: float | None = None) -> str | None:
    """The code in a valid, unexpired token; else ``None``."""
    if not token or len(token) > 120:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    code, issued, mac = parts
    if not hmac.compare_digest(mac, _mac(f"{code}.{issued}")):
        return None
    age = (now if now is not None else time.time()) - int(issued)
    if age < 0 or age > get_settings().share_cookie_days * 86400:
        return None
    return code


def current_code() -> str | None:
    """The share code the current request came with, if any."""
    return _current.get()


@contextlib.contextmanager
def using(code: str | None) -> Iterator[None]:
    """Make ``code`` the current request's share code (for the hooks it reaches)."""
    token = _current.set(code)
    try:
        yield
    finally:
        _current.reset(token)


def link_by_code(db: Session, code: str | None) -> ShareLink | None:
    if not code or len(code) > 24:
        return None
    return db.scalar(select(ShareLink).where(ShareLink.code == code))


def chain(db: Session, link: ShareLink) -> list[ShareLink]:
    """``link`` and its ancestors, nearest first, at most ``share_max_depth`` long."""
    out = [link]
    seen = {link.id}
    limit = get_settings().share_max_depth
    while len(out) < limit and out[-1].parent_id and out[-1].parent_id not in seen:
        parent = db.get(ShareLink, out[-1].parent_id)
        if parent is None:
            break
        seen.add(parent.id)
        out.append(parent)
    return out


def record(
    db: Session,
    kind: EventKind | str,
    subject_id: str | None,
    *,
    code: str | None = None,
) -> ShareLink | None:
    """Credit ``kind`` (visit, signup, quote, purchase) of ``subject_id`` to the link of
    ``code`` (default: the current request's) and its chain; nothing without a valid
    code. Returns the link credited directly."""
    link = link_by_code(db, code if code is not None else current_code())
    if link is None:
        return None
    kind = EventKind(kind)
    if subject_id is not None and kind is not EventKind.visit:
        done = db.scalar(
            select(ShareEvent.id).where(
                ShareEvent.link_id == link.id,
                ShareEvent.kind == kind.value,
                ShareEvent.subject_id == subject_id,
            )
        )
        if done is not None:
            return link  # the same sign-up, quote or purchase counts once
    for depth, credited in enumerate(chain(db, link), start=1):
        db.add(ShareEvent(link_id=credited.id, kind=kind.value, subject_id=subject_id, depth=depth))
    db.flush()
    return link


def on_issued(db: Session, application_id: str) -> int:
    """The application became a policy: its share links (and their chains), credited
    when it was submitted, now count a purchase.  Returns how many links were credited;
    a declined or abandoned application never counts as a purchase."""
    submitted = db.scalars(
        select(ShareEvent).where(
            ShareEvent.subject_id == application_id,
            ShareEvent.kind == EventKind.application.value,
        )
    ).all()
    for event in submitted:
        db.add(
            ShareEvent(
                link_id=event.link_id,
                kind=EventKind.purchase.value,
                subject_id=application_id,
                depth=event.depth,
            )
        )
    if submitted:
        db.flush()
    return len(submitted)
