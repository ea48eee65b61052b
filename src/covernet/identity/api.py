"""JSON routes for registration, signing in and machine keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from covernet.audit.api import actor_of
from covernet.core.errors import NotFound
from covernet.core.pagination import Page, PageParams, page_params
from covernet.identity import service
from covernet.identity.access import Admin, AnyUser, Db, Public, client_ip
from covernet.identity.models import ApiKey, User
from covernet.identity.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    LoginIn,
    RegisterIn,
    TokenOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1", tags=["identity"])


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        role=user.role,
        name=user.name,
        username=user.username,
        mobile=service.masked_mobile(user),
    )


def key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut.model_validate(row, from_attributes=True)


@router.post("/auth/register", status_code=201, response_model=UserOut)
def register(body: RegisterIn, request: Request, db: Db, _: Public) -> UserOut:
    user = service.register_customer(
        db, mobile=body.mobile, password=body.password, name=body.name, ip=client_ip(request)
    )
    return user_out(user)


@router.post("/auth/login", response_model=TokenOut)
def login(body: LoginIn, request: Request, db: Db, _: Public) -> TokenOut:
    ip = client_ip(request)
    if body.mobile is not None:
        user = service.authenticate_customer(db, mobile=body.mobile, password=body.password, ip=ip)
    else:
        assert body.username is not None
        user = service.authenticate_staff(
            db, username=body.username, password=body.password, totp=body.totp, ip=ip
        )
    issued = service.open_session(
        db, user, kind="bearer", user_agent=request.headers.get("user-agent")
    )
    return TokenOut(
        access_token=issued.token, expires_at=issued.session.expires_at, user=user_out(user)
    )


@router.post("/auth/logout", status_code=204)
def logout(db: Db, who: AnyUser) -> None:
    if who.session_id:
        service.revoke_session(db, who.session_id)


@router.get("/auth/me", response_model=UserOut | ApiKeyOut)
def me(db: Db, who: AnyUser) -> UserOut | ApiKeyOut:
    if who.api_key_id:
        row = db.get(ApiKey, who.api_key_id)
        assert row is not None
        return key_out(row)
    user = service.get_user(db, who.user_id)
    if user is None:
        raise NotFound("no such account")
    return user_out(user)


@router.post("/admin/api-keys", status_code=201, response_model=ApiKeyCreated)
def create_key(body: ApiKeyIn, db: Db, who: Admin) -> ApiKeyCreated:
    issued = service.create_api_key(
        db, name=body.name, role=body.role, insurer_code=body.insurer_code, by=actor_of(who)
    )
    return ApiKeyCreated(**key_out(issued.row).model_dump(), key=issued.key)


@router.get("/admin/api-keys", response_model=Page[ApiKeyOut])
def list_keys(
    db: Db, _: Admin, paging: Annotated[PageParams, Depends(page_params)]
) -> Page[ApiKeyOut]:
    rows, total = service.list_api_keys(db, offset=paging.offset, limit=paging.size)
    return Page(
        items=[key_out(row) for row in rows], page=paging.page, size=paging.size, total=total
    )


@router.delete("/admin/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: str, db: Db, who: Admin) -> ApiKeyOut:
    return key_out(service.revoke_api_key(db, key_id, by=actor_of(who)))
