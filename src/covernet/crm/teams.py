"""Teams of advisors and their supervisors.

Ops and admin make teams and put advisors in them; a member marked supervisor sees the
pools of every member of the teams they supervise. An advisor may be in several teams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.crm.models import Team, TeamMember
from covernet.identity.models import Role, User

CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")
MANAGERS = frozenset({Role.ops, Role.admin})


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="2–32 lower-case letters, digits or hyphens")
    name: str = Field(min_length=1, max_length=100)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        value = value.strip().lower()
        if not CODE.match(value):
            raise ValueError("a team code has 2 to 32 lower-case letters, digits or hyphens")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("the team needs a name")
        return value


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, description="the advisor's username")
    is_supervisor: bool = False


@dataclass(frozen=True)
class MemberView:
    user_id: str
    username: str | None
    name: str
    is_supervisor: bool


@dataclass(frozen=True)
class TeamView:
    team: Team
    members: list[MemberView]


def _team(db: Session, code: str) -> Team:
    team = db.scalar(select(Team).where(Team.code == code.strip().lower()))
    if team is None:
        raise NotFound("no team with this code", code="team_not_found", detail={"field": "code"})
    return team


def create_team(db: Session, data: TeamIn, *, by: audit.Actor) -> Team:
    taken = Conflict("a team with this code exists", code="team_exists", detail={"field": "code"})
    if db.scalar(select(Team.id).where(Team.code == data.code)) is not None:
        raise taken
    team = Team(code=data.code, name=data.name)
    db.add(team)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise taken from None
    audit.record(
        db,
        "team.create",
        actor=by,
        subject_type="team",
        subject_id=team.id,
        detail={"code": team.code},
    )
    return team


def _advisor(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.is_active:
        raise NotFound(
            "no staff account with this username",
            code="advisor_not_found",
            detail={"field": "username"},
        )
    if user.role != Role.advisor.value:
        raise ValidationFailed(
            "only advisors are members of teams",
            code="not_an_advisor",
            detail={"field": "username"},
        )
    return user


def set_member(db: Session, code: str, data: MemberIn, *, by: audit.Actor) -> TeamMember:
    """Add the advisor to the team, or change whether they supervise it."""
    team = _team(db, code)
    user = _advisor(db, data.username)
    row = db.scalar(
        select(TeamMember)
        .where(TeamMember.team_id == team.id, TeamMember.user_id == user.id)
        .with_for_update()
    )
    if row is None:
        row = TeamMember(team_id=team.id, user_id=user.id, is_supervisor=data.is_supervisor)
        db.add(row)
        try:
            with db.begin_nested():
                db.flush()
        except IntegrityError:  # a concurrent twin added them first
            row = db.scalars(
                select(TeamMember)
                .where(TeamMember.team_id == team.id, TeamMember.user_id == user.id)
                .with_for_update()
            ).one()
            row.is_supervisor = data.is_supervisor
    else:
        row.is_supervisor = data.is_supervisor
    db.flush()
    audit.record(
        db,
        "team.member_set",
        actor=by,
        subject_type="team",
        subject_id=team.id,
        detail={"user_id": user.id, "is_supervisor": data.is_supervisor},
    )
    return row


def remove_member(db: Session, code: str, user_id: str, *, by: audit.Actor) -> None:
    team = _team(db, code)
    row = db.scalar(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    )
    if row is None:
        raise NotFound(
            "this advisor is not in the team", code="member_not_found", detail={"field": "user_id"}
        )
    db.delete(row)
    db.flush()
    audit.record(
        db,
        "team.member_remove",
        actor=by,
        subject_type="team",
        subject_id=team.id,
        detail={"user_id": user_id},
    )


def teams(db: Session) -> list[TeamView]:
    rows = list(db.scalars(select(Team).order_by(Team.code)))
    members: dict[str, list[MemberView]] = {t.id: [] for t in rows}
    found = db.execute(
        select(TeamMember.team_id, TeamMember.is_supervisor, User.id, User.username, User.name)
        .join(User, User.id == TeamMember.user_id)
        .order_by(TeamMember.is_supervisor.desc(), User.name, User.id)
    )
    for team_id, sup, uid, username, name in found:
        members.setdefault(team_id, []).append(MemberView(uid, username, name, bool(sup)))
    return [TeamView(t, members.get(t.id, [])) for t in rows]


def supervisors_of(db: Session, user_id: str) -> list[str]:
    """The supervisors of the teams ``user_id`` is in (never the advisor themself)."""
    mine = select(TeamMember.team_id).where(TeamMember.user_id == user_id)
    found = db.scalars(
        select(TeamMember.user_id)
        .where(
            TeamMember.team_id.in_(mine),
            TeamMember.is_supervisor.is_(True),
            TeamMember.user_id != user_id,
        )
        .distinct()
    )
    return sorted(found)


def team_members(db: Session, supervisor_id: str) -> set[str]:
    """Everyone in the teams ``supervisor_id`` supervises (themself included); empty for
    someone who supervises no team."""
    led = select(TeamMember.team_id).where(
        TeamMember.user_id == supervisor_id, TeamMember.is_supervisor.is_(True)
    )
    return set(db.scalars(select(TeamMember.user_id).where(TeamMember.team_id.in_(led))))


def is_supervisor(db: Session, user_id: str) -> bool:
    return (
        db.scalar(
            select(TeamMember.id)
            .where(TeamMember.user_id == user_id, TeamMember.is_supervisor.is_(True))
            .limit(1)
        )
        is not None
    )
