"""One error type for the whole platform.

Every rejection carries a stable machine code (``error``), a human message and an
optional ``detail`` naming the field or value that was wrong.  One handler in
``covernet.app`` renders it as JSON for API clients and as a page for browsers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CovernetError(Exception):
    """Base of every domain error. ``status`` is the HTTP status it maps to."""

    code: str = "error"
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class ValidationFailed(CovernetError):
    """Well-formed input that breaks a business rule (400)."""

    code = "validation_failed"
    status = 400


class NotFound(CovernetError):
    code = "not_found"
    status = 404


class Unauthenticated(CovernetError):
    code = "unauthenticated"
    status = 401


class Forbidden(CovernetError):
    code = "forbidden"
    status = 403


class Conflict(CovernetError):
    code = "conflict"
    status = 409


class Unprocessable(CovernetError):
    """The request is understood but cannot be carried out (422 is only for malformed)."""

    code = "unprocessable"
    status = 409


class TooManyRequests(CovernetError):
    code = "rate_limited"
    status = 429


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="stable machine code, e.g. age_out_of_range")
    message: str = Field(description="what went wrong, for people")
    detail: Any = Field(default=None, description="the field or values concerned, if any")
