"""Accounts and signing in: customers, staff with TOTP, sessions, API keys, throttling."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import argon2.profiles
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core import clock
from covernet.core.cn_identity import normalize_mobile
from covernet.core.config import Environment, MfaMode, get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.db import unit_of_work
from covernet.core.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from covernet.core.ids import new_token
from covernet.core.masking import mask_mobile
from covernet.core.rotation import rotate_column
from covernet.crm import pool
from covernet.identity.models import (
    MACHINE_ROLES,
    STAFF_ROLES,
    ApiKey,
    AuthSession,
    LoginAttempt,
    Role,
    User,
)
from covernet.social import attribution

MOBILE_CONTEXT = "user.mobile"
TOTP_CONTEXT = "user.totp"
TOTP_ISSUER = "Covernet"
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{2,31}$")
API_KEY_PREFIX = "cnk"
KEY_USE_RESOLUTION = timedelta(minutes=1)


# Passwords ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


@lru_cache(maxsize=1)
def _cheap_hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


def _password_hasher() -> PasswordHasher:
    s = get_settings()
    if s.env is Environment.test:
        return _cheap_hasher()  # tests only: hashes stay valid argon2id, just cheap
    return _hasher(s.password_time_cost, s.password_memory_kib)


def check_password_policy(password: str) -> None:
    if len(password) < 8:
        raise ValidationFailed(
            "the password needs at least 8 characters",
            code="weak_password",
            detail={"field": "password"},
        )
    if len(password) > 128:
        raise ValidationFailed(
            "the password may have at most 128 characters",
            code="weak_password",
            detail={"field": "password"},
        )
    if password.isdigit() or password.isalpha():
        raise ValidationFailed(
            "the password needs both letters and digits or symbols",
            code="weak_password",
            detail={"field": "password"},
        )


def hash_password(password: str) -> str:
    return _password_hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mobile_index(mobile: str) -> str:
    return get_blind_index().digest(mobile, context=MOBILE_CONTEXT)


# Accounts ----------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 50:
        raise ValidationFailed(
            "the name must have 1 to 50 characters", code="invalid_name", detail={"field": "name"}
        )
    return name


def register_customer(
    db: Session, *, mobile: str, password: str, name: str, ip: str | None = None
) -> User:
    number = normalize_mobile(mobile)
    name = _clean_name(name)
    check_password_policy(password)
    if ip is not None:
        _throttle_registrations(db, ip)
    index = mobile_index(number)
    taken = Conflict(
        "this mobile number is already registered; log in instead",
        code="mobile_taken",
        detail={"field": "mobile"},
    )
    if db.scalar(select(User.id).where(User.mobile_index == index)) is not None:
        raise taken
    user = User(
        role=Role.customer.value,
        name=name,
        mobile_enc=get_cipher().encrypt(number, context=MOBILE_CONTEXT),
        mobile_index=index,
        password_hash=hash_password(password),
    )
    _insert_unique(db, user, taken)
    audit.record(
        db, "user.register", actor=actor_for(user), subject_type="user", subject_id=user.id
    )
    attribution.record(db, "signup", user.id)  # the share link it came through, if any
    pool.on_signup(db, user.id)  # an advisor's link: the customer joins their pool
    return user


def actor_for(user: User) -> audit.Actor:
    return audit.Actor("user", user.id, user.role)


def _insert_unique(db: Session, row: object, conflict: Conflict) -> None:
    """Add a row guarded by a unique index; a concurrent twin becomes ``conflict``
    (the request's unit of work then rolls back, leaving nothing behind)."""
    db.add(row)
    try:
        db.flush()
    except IntegrityError:
        raise conflict from None


def _throttle_registrations(db: Session, ip: str) -> None:
    """Registrations per client address are limited (each costs a password hash)."""
    s = get_settings()
    ident = _identifier_hash("register", ip)
    now = clock.now()
    with unit_of_work(_own_url(db)) as own:
        own.add(LoginAttempt(identifier_hash=ident, ip=ip, success=True, at=now))
    since = now - timedelta(seconds=s.login_window_seconds)
    if (
        _count(db, LoginAttempt.identifier_hash == ident, LoginAttempt.at >= since)
        > s.register_max_per_ip
    ):
        raise TooManyRequests(
            "too many registrations from this address; try again later",
            detail={"retry_after_seconds": s.login_window_seconds},
        )


@dataclass(frozen=True)
class StaffEnrolment:
    user: User
    totp_secret: str
    totp_uri: str


def add_staff(
    db: Session,
    *,
    username: str,
    role: Role,
    password: str,
    name: str,
    by: audit.Actor = audit.SYSTEM,
) -> StaffEnrolment:
    if role not in STAFF_ROLES:
        raise ValidationFailed(
            f"'{role.value}' is not a staff role; use one of "
            + ", ".join(sorted(r.value for r in STAFF_ROLES)),
            code="invalid_role",
            detail={"field": "role"},
        )
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise ValidationFailed(
            "a username has 3 to 32 characters: lower-case letters, digits, _ . - "
            "and starts with a letter",
            code="invalid_username",
            detail={"field": "username"},
        )
    check_password_policy(password)
    taken = Conflict(
        f"username '{username}' is taken", code="username_taken", detail={"field": "username"}
    )
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise taken
    secret = pyotp.random_base32()
    user = User(
        role=role.value,
        name=_clean_name(name),
        username=username,
        password_hash=hash_password(password),
        totp_secret_enc=get_cipher().encrypt(secret, context=TOTP_CONTEXT),
    )
    _insert_unique(db, user, taken)
    audit.record(
        db,
        "user.create",
        actor=by,
        subject_type="user",
        subject_id=user.id,
        detail={"role": role.value},
    )
    return StaffEnrolment(user, secret, totp_uri(username, secret))


def reset_totp(db: Session, username: str, *, by: audit.Actor = audit.SYSTEM) -> StaffEnrolment:
    """Give a staff account a new TOTP secret (lost phone, suspected leak): the old codes
    stop working, every open session of the account ends, and the change is audited."""
    user = db.scalar(
        select(User).where(User.username == username.strip().lower()).with_for_update()
    )
    if user is None or user.role not in {r.value for r in STAFF_ROLES}:
        raise NotFound(f"no staff account '{username}'", detail={"field": "username"})
    secret = pyotp.random_base32()
    user.totp_secret_enc = get_cipher().encrypt(secret, context=TOTP_CONTEXT)
    user.totp_last_step = None  # a new secret starts its own replay guard
    ended = db.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    audit.record(
        db,
        "user.mfa_reset",
        actor=by,
        subject_type="user",
        subject_id=user.id,
        detail={"sessions_ended": getattr(ended, "rowcount", 0)},
    )
    return StaffEnrolment(user, secret, totp_uri(user.username or username, secret))


def totp_uri(username: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def staff_totp_secret(user: User) -> str | None:
    if user.totp_secret_enc is None:
        return None
    return get_cipher().decrypt(user.totp_secret_enc, context=TOTP_CONTEXT)


def get_user(db: Session, user_id: str | None) -> User | None:
    """An active account by id (``None`` for no id, an unknown id or a closed account)."""
    if user_id is None:
        return None
    user = db.get(User, user_id)
    return user if user is not None and user.is_active else None


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt this domain's personal data under the active key."""
    return rotate_column(db, User.id, User.mobile_enc, context=MOBILE_CONTEXT) + rotate_column(
        db, User.id, User.totp_secret_enc, context=TOTP_CONTEXT
    )


def user_mobile(user: User) -> str | None:
    if user.mobile_enc is None:
        return None
    return get_cipher().decrypt(user.mobile_enc, context=MOBILE_CONTEXT)


def masked_mobile(user: User) -> str | None:
    mobile = user_mobile(user)
    return mask_mobile(mobile) if mobile else None


# Signing in --------------------------------------------------------------------------

BAD_CREDENTIALS = "the account or password is wrong"


def _own_url(db: Session) -> str:
    return db.get_bind().engine.url.render_as_string(hide_password=False)


def _count(db: Session, *conditions: Any) -> int:
    return db.scalar(select(func.count()).select_from(LoginAttempt).where(*conditions)) or 0


def _begin_attempt(db: Session, identifier_hash: str, ip: str) -> int:
    """Record a login attempt as a failure before checking anything, then throttle.

    The row is committed in its own transaction first, so parallel guesses all see each
    other: whichever counts last sees them all, and at most the allowed number get to
    try a password.  A successful sign-in turns the row into a success afterwards.
    """
    s = get_settings()
    now = clock.now()
    with unit_of_work(_own_url(db)) as own:
        attempt = LoginAttempt(identifier_hash=identifier_hash, ip=ip, success=False, at=now)
        own.add(attempt)
        own.flush()
        attempt_id = attempt.id
    since = now - timedelta(seconds=s.login_window_seconds)
    failed = LoginAttempt.success.is_(False)
    if (
        _count(
            db, LoginAttempt.identifier_hash == identifier_hash, LoginAttempt.at >= since, failed
        )
        > s.login_max_failures
        or _count(db, LoginAttempt.ip == ip, LoginAttempt.at >= since, failed)
        > s.login_max_failures_per_ip
    ):
        raise TooManyRequests(
            "too many failed logins; try again later",
            detail={"retry_after_seconds": s.login_window_seconds},
        )
    return attempt_id


def _succeed(db: Session, attempt_id: int) -> None:
    db.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(success=True))


def _forget(db: Session, attempt_id: int) -> None:
    """Neither success nor failure (a right password still waiting for its TOTP code)."""
    with unit_of_work(_own_url(db)) as own:
        own.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


def _identifier_hash(kind: str, value: str) -> str:
    return get_blind_index().digest(f"{kind}:{value}", context="login")


def _password_matches(user: User | None, password: str) -> bool:
    """Verify, spending the same time whether or not the account exists."""
    if user is None or not user.is_active:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(user.password_hash, password)


@lru_cache(maxsize=4)
def _dummy_hash_for(_hasher_id: int) -> str:
    return _password_hasher().hash("not-a-real-password-0")


def _dummy_hash() -> str:
    return _dummy_hash_for(id(_password_hasher()))


def authenticate_customer(db: Session, *, mobile: str, password: str, ip: str) -> User:
    try:
        number = normalize_mobile(mobile)
    except ValidationFailed:
        number = mobile.strip()
    attempt = _begin_attempt(db, _identifier_hash("mobile", number), ip)
    user = db.scalar(select(User).where(User.mobile_index == mobile_index(number)))
    if user is not None and user.role != Role.customer:
        user = None  # staff sign in by username; checked below at the same cost
    if not _password_matches(user, password) or user is None:
        raise Unauthenticated(BAD_CREDENTIALS, code="invalid_credentials")
    _succeed(db, attempt)
    user.last_login_at = clock.now()
    audit.record(db, "auth.login", actor=actor_for(user), subject_type="user", subject_id=user.id)
    return user


def authenticate_staff(
    db: Session, *, username: str, password: str, totp: str | None, ip: str
) -> User:
    username = username.strip().lower()
    attempt = _begin_attempt(db, _identifier_hash("staff", username), ip)
    user = db.scalar(select(User).where(User.username == username))
    if user is not None and user.role not in STAFF_ROLES:
        user = None
    if not _password_matches(user, password) or user is None:
        raise Unauthenticated(BAD_CREDENTIALS, code="invalid_credentials")
    mfa_required = get_settings().staff_mfa is MfaMode.required
    if mfa_required or totp:
        if not totp:
            # The password was right; say what is missing without counting a failure.
            _forget(db, attempt)
            raise Unauthenticated(
                "staff sign-in needs the 6-digit code from the authenticator app",
                code="totp_required",
                detail={"field": "totp"},
            )
        if not _accept_totp(db, user, totp):
            raise Unauthenticated(
                "the authenticator code is wrong or was already used",
                code="invalid_totp",
                detail={"field": "totp"},
            )
    _succeed(db, attempt)
    user.last_login_at = clock.now()
    audit.record(db, "auth.login", actor=actor_for(user), subject_type="user", subject_id=user.id)
    return user


def _accept_totp(db: Session, user: User, code: str) -> bool:
    """Accept a code once: the time step is claimed with a conditional update, so two
    requests racing with the same code cannot both get in."""
    secret = staff_totp_secret(user)
    code = code.strip()
    if secret is None or not re.fullmatch(r"\d{6}", code):
        return False
    totp = pyotp.TOTP(secret)
    step_now = int(clock.now().timestamp()) // totp.interval
    for step in (step_now - 1, step_now, step_now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            claimed = db.execute(
                update(User)
                .where(
                    User.id == user.id,
                    or_(User.totp_last_step.is_(None), User.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(claimed, "rowcount", 0) == 1)
    return False


def current_totp(secret: str, at: datetime | None = None) -> str:
    """The code an authenticator shows now (demo print-outs and tests)."""
    return pyotp.TOTP(secret).at(at or clock.now())


# Sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedSession:
    token: str
    session: AuthSession


def open_session(db: Session, user: User, *, kind: str, user_agent: str | None) -> IssuedSession:
    s = get_settings()
    hours = s.session_hours if kind == "cookie" else s.api_token_hours
    token = new_token()
    row = AuthSession(
        token_hash=_token_hash(token),
        user_id=user.id,
        kind=kind,
        csrf_token=new_token(24) if kind == "cookie" else None,
        expires_at=clock.now() + timedelta(hours=hours),
        user_agent=(user_agent or "")[:255] or None,
    )
    db.add(row)
    db.flush()
    return IssuedSession(token, row)


def resolve_session(db: Session, token: str, *, kind: str) -> tuple[AuthSession, User] | None:
    """The session and account of ``token`` as ORM objects (see :func:`signed_in`)."""
    found = signed_in(db, token, kind=kind)
    if found is None:
        return None
    sess, user = db.get(AuthSession, found.session_id), db.get(User, found.user_id)
    return (sess, user) if sess is not None and user is not None else None


@dataclass(frozen=True)
class SignedIn:
    """What a request needs of a valid session: read as plain columns, no ORM objects."""

    session_id: str
    csrf_token: str | None
    user_id: str
    role: str
    name: str


def signed_in(db: Session, token: str, *, kind: str) -> SignedIn | None:
    """The session of ``token`` if it is of ``kind``, not revoked or expired, and its
    account active: one query, as :func:`resolve_session` but without loading entities."""
    row = (
        db.connection()
        .execute(  # Core, not the ORM: plain columns are all it reads
            _SIGNED_IN.where(AuthSession.token_hash == _token_hash(token))
        )
        .first()
    )
    return _valid(row, kind) if row is not None else None


def signed_in_many(db: Session, tokens: Collection[str]) -> Callable[[str, str], SignedIn | None]:
    """:func:`signed_in` for many tokens in one query: a look-up of (token, kind)."""
    by_hash = {_token_hash(token): token for token in set(tokens)}
    rows: dict[str, Any] = {}
    if by_hash:
        found = db.connection().execute(
            _SIGNED_IN.add_columns(AuthSession.token_hash).where(
                AuthSession.token_hash.in_(list(by_hash))
            )
        )
        rows = {by_hash[row[-1]]: row[:-1] for row in found}

    def lookup(token: str, kind: str) -> SignedIn | None:
        row = rows.get(token)
        return _valid(row, kind) if row is not None else None

    return lookup


def _valid(row: Any, kind: str) -> SignedIn | None:
    session_id, found_kind, csrf, expires_at, revoked_at, user_id, role, name, active = row
    if found_kind != kind or revoked_at is not None or expires_at <= clock.now() or not active:
        return None
    return SignedIn(session_id, csrf, user_id, role, name)


_SIGNED_IN = select(
    AuthSession.id,
    AuthSession.kind,
    AuthSession.csrf_token,
    AuthSession.expires_at,
    AuthSession.revoked_at,
    User.id,
    User.role,
    User.name,
    User.is_active,
).join(User, User.id == AuthSession.user_id)


def revoke_session(db: Session, session_id: str) -> None:
    db.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


# API keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    key: str
    row: ApiKey


def create_api_key(
    db: Session,
    *,
    name: str,
    role: Role,
    insurer_code: str | None = None,
    by: audit.Actor = audit.SYSTEM,
) -> IssuedKey:
    if role not in MACHINE_ROLES:
        raise ValidationFailed(
            "API keys are for machine clients: role insurer or partner",
            code="invalid_role",
            detail={"field": "role"},
        )
    if role is Role.insurer and not insurer_code:
        raise ValidationFailed(
            "an insurer key names its insurer",
            code="insurer_required",
            detail={"field": "insurer_code"},
        )
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValidationFailed(
            "the key needs a name of 1 to 100 characters",
            code="invalid_name",
            detail={"field": "name"},
        )
    prefix = new_token(6)[:8].replace("-", "a").replace("_", "b")
    secret = new_token(32)
    key = f"{API_KEY_PREFIX}_{prefix}_{secret}"
    row = ApiKey(
        prefix=prefix,
        key_hash=_token_hash(key),
        name=name,
        role=role.value,
        insurer_code=insurer_code,
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        "api_key.create",
        actor=by,
        subject_type="api_key",
        subject_id=row.id,
        detail={"role": role.value, "insurer": insurer_code, "prefix": prefix},
    )
    return IssuedKey(key, row)


def resolve_api_key(db: Session, key: str) -> ApiKey | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, _token_hash(key)):
        return None
    now = clock.now()
    if row.last_used_at is None or now - row.last_used_at > KEY_USE_RESOLUTION:
        row.last_used_at = now  # written at most once a minute per key
    return row


def revoke_api_key(db: Session, key_id: str, *, by: audit.Actor = audit.SYSTEM) -> ApiKey:
    row = db.get(ApiKey, key_id)
    if row is None:
        raise NotFound("no such API key", detail={"field": "key_id"})
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        audit.record(db, "api_key.revoke", actor=by, subject_type="api_key", subject_id=row.id)
    return row


def list_api_keys(db: Session, *, offset: int = 0, limit: int = 20) -> tuple[list[ApiKey], int]:
    """A page of keys, newest first, and how many there are."""
    total = db.scalar(select(func.count()).select_from(ApiKey)) or 0
    rows = db.scalars(
        select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id).offset(offset).limit(limit)
    )
    return list(rows), total


def purge_login_attempts(db: Session) -> int:
    """Delete login records (client addresses) past their retention (R30)."""
    days = max(get_settings().login_attempt_days, 1)
    cutoff = clock.now() - timedelta(days=days)
    result = db.execute(delete(LoginAttempt).where(LoginAttempt.at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
