"""The periodic jobs: stale payments, renewal reminders, expiry, red envelopes, the
customer pool, the desk (e-mail delivery, snoozes, service-level escalations),
appointment reminders.

``covernet jobs`` runs them once (cron, or the worker's loop); each job is its own unit
of work, so one failing does not undo the others, and each is safe to run again.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from covernet.consult import appointments
from covernet.consult import monitors as desk_monitors
from covernet.consult import service as desk
from covernet.consult.channels import email as desk_email
from covernet.consult.channels import wechat as desk_wechat
from covernet.core.db import unit_of_work
from covernet.crm import pool
from covernet.payments import service as payments
from covernet.policies import applications, renewal
from covernet.social import tasks as social_tasks

# Registering the premium handlers: a payment expired here abandons its application.
_ = applications.PURPOSE


def _expire_payments(db: Session) -> int:
    return sum(payments.expire_stale(db).values())


JOBS: dict[str, Callable[[Session], int]] = {
    "expire_payments": _expire_payments,
    "renewal_reminders": renewal.remind,
    "expire_policies": renewal.expire_ended,
    "expire_red_envelopes": social_tasks.expire_envelopes,
    "sync_customer_pool": pool.sync,
    "desk_email_delivery": desk_email.delivery_job,
    "desk_wechat_delivery": desk_wechat.delivery_job,
    "appointment_reminders": appointments.remind,
    "desk_wake_snoozed": desk.wake_snoozed,
    "desk_escalate_breaches": desk_monitors.escalate_breaches,
}


def run_all() -> dict[str, int]:
    done = {}
    for name, job in JOBS.items():
        with unit_of_work() as db:
            done[name] = job(db)
    return done
