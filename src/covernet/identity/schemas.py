"""Request and response bodies for accounts and signing in."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from covernet.identity.models import Role


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mobile: str = Field(max_length=20, description="mainland mobile number")
    password: str = Field(max_length=256)
    name: str = Field(max_length=100)


class LoginIn(BaseModel):
    """Customers sign in with ``mobile``; staff with ``username`` and ``totp``."""

    model_config = ConfigDict(extra="forbid")

    mobile: str | None = Field(default=None, max_length=20)
    username: str | None = Field(default=None, max_length=64)
    password: str = Field(max_length=256)
    totp: str | None = Field(default=None, max_length=10)

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginIn:
        if (self.mobile is None) == (self.username is None):
            raise ValueError("give either mobile (customers) or username (staff)")
        return self


class UserOut(BaseModel):
    id: str
    role: Role
    name: str
    username: str | None = None
    mobile: str | None = Field(default=None, description="masked")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: datetime
    user: UserOut


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    role: Role
    insurer_code: str | None = Field(default=None, max_length=64)


class ApiKeyOut(BaseModel):
    id: str
    prefix: str
    name: str
    role: Role
    insurer_code: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; store it now")
