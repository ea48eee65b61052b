"""JSON routes for staff: customer search and 360, tags, notes, unmasked views, pool
assignment, and teams (ops and admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from covernet.crm import pool, service, teams
from covernet.identity.access import Db, Principal, allow
from covernet.identity.models import Role

router = APIRouter(prefix="/api/v1", tags=["customers"])

Reader = Annotated[Principal, allow(*service.READERS)]
Manager = Annotated[Principal, allow(*teams.MANAGERS)]
Assigner = Annotated[Principal, allow(Role.advisor, *pool.ASSIGNERS)]


class FoundOut(BaseModel):
    customer_id: str
    name: str = Field(description="masked")
    mobile: str | None = Field(description="masked")
    advisor_name: str | None
    matched: str


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str = Field(min_length=1, max_length=32)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=service.NOTE_MAX + 100)


class UnmaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: Literal["mobile", "id_number"]
    reason_code: str = Field(max_length=32, description=", ".join(service.UNMASK_REASONS))
    reason: str = Field(max_length=400)


class UnmaskOut(BaseModel):
    field: str
    value: str


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advisor_id: str = Field(max_length=36)
    reason: str = Field(max_length=400)


class PoolEntryOut(BaseModel):
    customer_id: str
    advisor_id: str
    source: str


class MemberOut(BaseModel):
    user_id: str
    username: str | None
    name: str
    is_supervisor: bool


class TeamOut(BaseModel):
    code: str
    name: str
    members: list[MemberOut]


def _team_out(view: teams.TeamView) -> TeamOut:
    return TeamOut(
        code=view.team.code,
        name=view.team.name,
        members=[MemberOut(**m.__dict__) for m in view.members],
    )


@router.get("/customers", response_model=list[FoundOut])
def search_customers(
    db: Db, who: Reader, q: Annotated[str, Query(max_length=60)] = ""
) -> list[FoundOut]:
    """Customers the caller may see, by mobile (full or masked), policy number or name."""
    return [
        FoundOut(
            customer_id=f.id,
            name=f.name,
            mobile=f.mobile,
            advisor_name=f.advisor_name,
            matched=f.matched,
        )
        for f in service.search(db, who, q)
    ]


@router.get("/customers/{customer_id}", response_model=dict[str, Any])
def customer_360(customer_id: str, db: Db, who: Reader, response: Response) -> dict[str, Any]:
    """The customer 360: masked identity, consents, policies, claims, payments, red
    envelopes, share links, conversations, tags, notes and suggested next products."""
    response.headers["Cache-Control"] = "no-store"
    return service.view(db, who, customer_id)


@router.post("/customers/{customer_id}/tags", status_code=201, response_model=list[str])
def add_tag(customer_id: str, body: TagIn, db: Db, who: Reader) -> list[str]:
    service.add_tag(db, who, customer_id, body.tag)
    return [t.tag for t in service.tags_of(db, customer_id)]


@router.delete("/customers/{customer_id}/tags/{tag}", response_model=list[str])
def remove_tag(customer_id: str, tag: str, db: Db, who: Reader) -> list[str]:
    service.remove_tag(db, who, customer_id, tag)
    return [t.tag for t in service.tags_of(db, customer_id)]


@router.post("/customers/{customer_id}/notes", status_code=201, response_model=dict[str, str])
def add_note(customer_id: str, body: NoteIn, db: Db, who: Reader) -> dict[str, str]:
    note = service.add_note(db, who, customer_id, body.body)
    return {"note_id": note.id, "created_at": note.created_at.isoformat()}


@router.post("/customers/{customer_id}/unmask", response_model=UnmaskOut)
def unmask(customer_id: str, body: UnmaskIn, db: Db, who: Reader, response: Response) -> UnmaskOut:
    """One personal field in full, for a reason from the list plus words; audited."""
    response.headers["Cache-Control"] = "no-store"
    value = service.unmask(db, who, customer_id, body.field, body.reason_code, body.reason)
    return UnmaskOut(field=body.field, value=value)


@router.put("/customers/{customer_id}/advisor", response_model=PoolEntryOut)
def assign_advisor(customer_id: str, body: AssignIn, db: Db, who: Assigner) -> PoolEntryOut:
    """Put the customer in an advisor's pool (ops, admin, or the supervisor of both)."""
    row = pool.assign(db, who, customer_id, body.advisor_id, body.reason)
    return PoolEntryOut(customer_id=row.customer_id, advisor_id=row.advisor_id, source=row.source)


@router.get("/teams", response_model=list[TeamOut])
def list_teams(db: Db, who: Manager) -> list[TeamOut]:
    return [_team_out(t) for t in teams.teams(db)]


@router.post("/teams", status_code=201, response_model=TeamOut)
def create_team(body: teams.TeamIn, db: Db, who: Manager) -> TeamOut:
    team = teams.create_team(db, body, by=service.actor(who))
    return next(_team_out(t) for t in teams.teams(db) if t.team.id == team.id)


@router.put("/teams/{code}/members", response_model=TeamOut)
def set_member(code: str, body: teams.MemberIn, db: Db, who: Manager) -> TeamOut:
    row = teams.set_member(db, code, body, by=service.actor(who))
    return next(_team_out(t) for t in teams.teams(db) if t.team.id == row.team_id)


@router.delete("/teams/{code}/members/{user_id}", status_code=204)
def remove_member(code: str, user_id: str, db: Db, who: Manager) -> Response:
    teams.remove_member(db, code, user_id, by=service.actor(who))
    return Response(status_code=204)


@router.get("/desk/reports", response_model=dict[str, Any])
def desk_reports(
    db: Db, who: Reader, days: Annotated[int, Query(ge=1, le=366)] = 7
) -> dict[str, Any]:
    """The desk's figures for the last ``days`` days (supervisors see their teams)."""
    from covernet.crm.pages import window

    _, since, until = window(str(days))
    found = service.desk_report(db, who, since, until)
    return {
        **asdict(found),
        "since": since,
        "until": until,
        "sla_rate": found.sla_rate,
        "bot": {
            **asdict(found.bot),
            "resolution_rate": found.bot.resolution_rate,
            "handoff_rate": found.bot.handoff_rate,
        },
    }
