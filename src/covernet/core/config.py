"""All settings in one place (environment prefix ``COVERNET_``).

Defaults run the demo on SQLite under ``./var/``.  Outside development and test the
app refuses to start with the default (public) secrets.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Public development secrets: fine on a laptop, refused in production.
DEV_SECRET_KEY = "dev-only-secret-key-change-me-0000000000000000"  # noqa: S105
# base64 of 32 bytes; "dev1" is the key id.
DEV_FIELD_KEYS = "dev1:ZGV2LW9ubHktZmllbGQta2V5LTAwMDAwMDAwMDAwMDA="
DEV_BLIND_INDEX_KEY = "dev-only-blind-index-key-0000000000000000"
DEMO_PASSWORD = "covernet-demo"  # noqa: S105 - the documented demo login
DEV_SANDBOX_PAYMENT_SECRET = "dev-only-sandbox-payment-secret-000000000000"  # noqa: S105
DEV_SANDBOX_INSURER_SECRET = "dev-only-sandbox-insurer-secret-000000000000"  # noqa: S105
# Partners' event signing secrets by partner code (catalog/partners.yaml's demo partners).
DEV_PARTNER_SECRETS = {
    "demo-shop": "dev-only-partner-secret-demo-shop-00000000000",
    "demo-air": "dev-only-partner-secret-demo-air-000000000000",
}
# 保险法 Art 47: a refund is paid within 30 days at the latest (R18).
STATUTORY_REFUND_DAYS = 30


class InsurerEndpoint(BaseModel):
    """Where one insurer's core system hears about policies (R19): a webhook URL, or
    ``sandbox`` for the in-app sandbox insurer, and the shared HMAC secret."""

    url: str
    secret: str
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)


def _sandbox_insurer() -> dict[str, InsurerEndpoint]:
    return {"*": InsurerEndpoint(url="sandbox", secret=DEV_SANDBOX_INSURER_SECRET)}


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class MfaMode(StrEnum):
    required = "required"
    optional = "optional"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COVERNET_", extra="ignore")

    env: Environment = Environment.development
    database_url: str = "sqlite:///./var/covernet.db"
    database_echo: bool = False
    database_pool_size: int = 20
    # PostgreSQL: test each pooled connection with a round trip before use.  Off by
    # default: a connection broken by a server restart fails its one statement, which
    # invalidates the whole pool (so the next checkouts reconnect); connections are
    # also replaced after ``database_pool_recycle_seconds``.
    database_pre_ping: bool = False
    database_pool_recycle_seconds: int = 1800
    # SQLite durability: NORMAL (WAL: a crash may lose the last commits, never corrupt) or
    # FULL (every commit fsynced before it returns).
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"

    secret_key: str = DEV_SECRET_KEY
    # Comma-separated ``keyid:base64key`` pairs; the first is used to encrypt, all decrypt.
    field_keys: str = DEV_FIELD_KEYS
    blind_index_key: str = DEV_BLIND_INDEX_KEY

    staff_mfa: MfaMode = MfaMode.required
    cookie_secure: bool = True
    session_hours: int = Field(default=12, ge=1)
    api_token_hours: int = Field(default=24, ge=1)
    # Share links: the attribution cookie's lifetime and how far up a chain credit goes.
    share_cookie_days: int = Field(default=30, ge=1, le=365)
    share_max_depth: int = Field(default=10, ge=1, le=50)

    # Login throttling: failures per identifier / per client address in a window.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    register_max_per_ip: int = Field(default=20, ge=1)
    # Addresses of reverse proxies whose X-Forwarded-For is believed (client address).
    trusted_proxies: str = "127.0.0.1"

    catalog_dir: Path = Path("catalog")
    catalog_cache_seconds: float = Field(default=2.0, ge=0)
    quote_valid_minutes: int = Field(default=30, ge=1)
    # Uploaded files (claim documents) live here, outside the database.
    storage_dir: Path = Path("var/uploads")
    claim_upload_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Renewal opens (and the customer is reminded) this many days before cover ends (R8).
    renewal_window_days: int = Field(default=7, ge=1, le=90)
    # R30: keep personal data only as long as needed (`covernet purge`).
    quote_personal_data_days: int = Field(default=30, ge=1)
    login_attempt_days: int = Field(default=30, ge=1)
    # R3: content waiting longer than this for review is a breach on /console/monitors.
    content_review_max_days: int = Field(default=2, ge=0)

    # Argon2 cost; the test environment lowers it (see identity.passwords).
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)

    # Payments: the provider adapter in use, its sandbox's signing secret, how long a
    # payment stays payable, and the refund standard (R18: seed 5 days, never beyond 30).
    # Providers call back at ``public_url``.  Production uses no provider until one is
    # named (never the sandbox by default).
    payment_provider: str = "sandbox"
    sandbox_payment_secret: str = DEV_SANDBOX_PAYMENT_SECRET
    payment_valid_minutes: int = Field(default=30, ge=1)
    refund_due_days: int = Field(default=5, ge=1, le=STATUTORY_REFUND_DAYS)
    # Red envelopes (social/): how long an open envelope can be grabbed, and how long a
    # grab holds its share before it expires unactivated (both refunded to the sender).
    red_envelope_open_hours: int = Field(default=24, ge=1, le=24 * 7)
    red_envelope_hold_hours: int = Field(default=24, ge=1, le=24 * 7)
    # Sandbox payouts: seconds before the sandbox's confirmation callback is due.
    sandbox_payout_delay_seconds: float = Field(default=0, ge=0, le=3600)

    # Notifications (notify/): the SMS notifier ("sandbox" records what it would send),
    # the SMTP server e-mail goes through, and delivery attempts and first retry wait.
    sms_notifier: str = "sandbox"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "Covernet <noreply@covernet.local>"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    notify_max_attempts: int = Field(default=5, ge=1)
    notify_retry_seconds: int = Field(default=30, ge=1)

    # Insurer sync (R19): each insurer's endpoint by code ("*": any other insurer), as
    # JSON in COVERNET_INSURER_ENDPOINTS; the demo sends everything to the sandbox
    # insurer.  Production has none until named.  Outbox delivery: attempts before a
    # row is dead, the first retry's wait (doubling, at most an hour), a claim's lease.
    insurer_endpoints: dict[str, InsurerEndpoint] = Field(default_factory=_sandbox_insurer)
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_retry_seconds: int = Field(default=60, ge=1)
    outbox_lease_seconds: int = Field(default=300, ge=5)

    # Partner events (POST /api/v1/partner/events): each partner's HMAC-SHA256 signing
    # secret by partner code, as JSON in COVERNET_PARTNER_SECRETS, and how far a signed
    # timestamp may be from now.  Production has none until named.
    partner_secrets: dict[str, str] = Field(default_factory=lambda: dict(DEV_PARTNER_SECRETS))
    partner_event_window_seconds: int = Field(default=300, ge=30, le=3600)
    # The official-account callback token (signs its callbacks); unset: the callback answers 403.
    wechat_token: str | None = None

    demo_password: str = DEMO_PASSWORD
    service_phone: str = "400-000-0000"
    # Where customers reach the platform: links to it are "own pages" (R4), and
    # outside parties (payment callbacks) are pointed at it.
    public_url: str = "http://127.0.0.1:8000"
    # The CJK font (.ttf/.otf/.ttc) embedded in e-policy PDFs; unset: a known system font.
    pdf_font: Path | None = None

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env is Environment.production:
            bad = [
                name
                for name, value, default in (
                    ("COVERNET_SECRET_KEY", self.secret_key, DEV_SECRET_KEY),
                    ("COVERNET_FIELD_KEYS", self.field_keys, DEV_FIELD_KEYS),
                    ("COVERNET_BLIND_INDEX_KEY", self.blind_index_key, DEV_BLIND_INDEX_KEY),
                )
                if value == default
            ]
            if "payment_provider" not in self.model_fields_set:
                self.payment_provider = ""  # production names its payment provider; none till then
            elif (
                self.payment_provider == "sandbox"
                and self.sandbox_payment_secret == DEV_SANDBOX_PAYMENT_SECRET
            ):
                bad.append("COVERNET_SANDBOX_PAYMENT_SECRET")
            if "insurer_endpoints" not in self.model_fields_set:
                self.insurer_endpoints = {}  # production names its insurers' endpoints
            secrets = [e.secret for e in self.insurer_endpoints.values()]
            if DEV_SANDBOX_INSURER_SECRET in secrets or "" in secrets:
                bad.append("COVERNET_INSURER_ENDPOINTS")
            if "partner_secrets" not in self.model_fields_set:
                self.partner_secrets = {}  # production names its partners' secrets
            signing = set(self.partner_secrets.values())
            if signing & set(DEV_PARTNER_SECRETS.values()) or any(len(s) < 16 for s in signing):
                bad.append("COVERNET_PARTNER_SECRETS")
            if bad:
                raise ValueError(
                    "refusing to run in production with the public development secrets: "
                    + ", ".join(bad)
                )
            if self.staff_mfa is not MfaMode.required:
                raise ValueError("COVERNET_STAFF_MFA must be 'required' in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (after the environment changed)."""
    get_settings.cache_clear()
