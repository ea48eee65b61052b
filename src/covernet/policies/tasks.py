"""The buying flow's periodic jobs: stale payments, renewal reminders, expiry.

``covernet jobs`` runs them once (cron, or the worker's loop); each job is its own unit
of work, so one failing does not undo the others, and each is safe to run again.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from covernet.consult import appointments
from covernet.consult.channels import email as desk_email
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
    "appointment_reminders": appointments.remind,
}


def run_all() -> dict[str, int]:
    done = {}
    for name, job in JOBS.items():
        with unit_of_work() as db:
            done[name] = job(db)
    return done
