"""Who answers a conversation: by skill (its product line), load (fewest active
conversations) and availability, and only advisors whose license is active and covers
the line (R1, asked of :func:`covernet.compliance.licenses.require_license`).

Assignment takes the agent's row lock first (an UPDATE: the row lock on PostgreSQL,
the database write lock on SQLite) and counts the agent's active conversations after
it, so two conversations arriving together never push an agent past ``max_open``.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from covernet.catalog.spec import Line
from covernet.compliance import licenses
from covernet.consult.models import ACTIVE_STATES, Availability, Conversation, DeskAgent
from covernet.core import clock
from covernet.core.errors import Conflict


def license_problem(db: Session, user_id: str, line: str | None) -> licenses.LicenseRefused | None:
    """Why ``user_id`` may not advise on ``line`` (any line when None), or None."""
    try:
        licenses.require_license(db, user_id, Line(line) if line else None)
    except licenses.LicenseRefused as exc:
        return exc
    return None


def active_count(db: Session, user_id: str) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.assignee_id == user_id, Conversation.state.in_(ACTIVE_STATES))
        )
        or 0
    )


def lock_agent(db: Session, user_id: str) -> DeskAgent | None:
    """Take the agent's row lock (a no-op write), then read the row as it is now."""
    db.execute(
        update(DeskAgent)
        .where(DeskAgent.user_id == user_id)
        .values(updated_at=DeskAgent.updated_at)
        .execution_options(synchronize_session=False)
    )
    return db.get(DeskAgent, user_id, populate_existing=True)


def takes_line(agent: DeskAgent, line: str | None) -> bool:
    return line is None or line in agent.skills


def candidates(db: Session, line: str | None) -> list[str]:
    """Online agents taking ``line`` with a license for it, least loaded first (then the
    one who waited longest since their last assignment)."""
    load = (
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.assignee_id == DeskAgent.user_id, Conversation.state.in_(ACTIVE_STATES))
        .correlate(DeskAgent)
        .scalar_subquery()
    )
    rows = db.execute(
        select(DeskAgent, load.label("load"))
        .where(DeskAgent.availability == Availability.online.value)
        .order_by(load, DeskAgent.last_assigned_at.is_not(None), DeskAgent.last_assigned_at)
    ).all()
    return [
        agent.user_id
        for agent, current in rows
        if takes_line(agent, line)
        and current < agent.max_open
        and license_problem(db, agent.user_id, line) is None
    ]


def reserve(db: Session, user_id: str, line: str | None, *, online: bool = True) -> bool:
    """Lock the agent and check they can take one more conversation on ``line`` now."""
    agent = lock_agent(db, user_id)
    if agent is None or not takes_line(agent, line):
        return False
    if online and agent.availability != Availability.online.value:
        return False
    if active_count(db, user_id) >= agent.max_open:
        return False
    agent.last_assigned_at = clock.now()
    return True


def choose(db: Session, line: str | None) -> str | None:
    """The agent the conversation goes to (already reserved), or None: it waits in the
    queue of its line."""
    for user_id in candidates(db, line):
        if reserve(db, user_id, line):
            return user_id
    return None


def reserve_for_transfer(db: Session, user_id: str, line: str | None) -> None:
    """A transfer goes only to a desk agent with a license for the line and room."""
    problem = license_problem(db, user_id, line)
    if problem is not None:
        raise Conflict(
            f"this advisor may not take the conversation: {problem.message}",
            code=problem.code,
            detail={"field": "to_user_id", **(problem.detail or {})},
        )
    agent = lock_agent(db, user_id)
    if agent is None:
        raise Conflict(
            "the advisor does not work at the desk",
            code="not_a_desk_agent",
            detail={"field": "to_user_id"},
        )
    if active_count(db, user_id) >= agent.max_open:
        raise Conflict(
            "the advisor already holds as many conversations as they may",
            code="agent_full",
            detail={"field": "to_user_id", "max_open": agent.max_open},
        )
    agent.last_assigned_at = clock.now()
