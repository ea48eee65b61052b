"""Service-standard monitors: one figure per standard, registered by the capability that
owns it, shown together on the compliance console (``/console/monitors``).

A capability registers a function where it lives::

    from covernet.compliance import monitors

    @monitors.register("refunds_on_time", order=40, regulation="R18", href="/console/refunds")
    def refunds_on_time(db: Session, today: date) -> monitors.Figure:
        ...
        return monitors.Figure(key="refunds_on_time", regulation="R18", value=..., ...)

and adds its module's name to :data:`MONITOR_MODULES`, so :func:`evaluate` imports it
(registration never depends on what happened to be imported first).  A monitor reads
only; it names people by advisor name or license number, never by mobile or ID number.
A monitor that raises becomes a figure with status ``error``; the others still show.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from covernet.core import clock

log = logging.getLogger("covernet.monitors")

# Modules that register monitors; a new capability appends its own.
MONITOR_MODULES: list[str] = [
    "covernet.compliance.license_monitors",
    "covernet.compliance.content_monitors",
    "covernet.compliance.live_monitors",
    "covernet.payments.monitors",
    "covernet.policies.monitors",
    "covernet.integration.monitors",
    "covernet.claims.monitors",
    "covernet.crm.monitors",
    "covernet.consult.monitors",
]
MAX_ITEMS = 50

Status = Literal["ok", "warning", "breach", "error"]


class Item(BaseModel):
    """One thing behind a figure: a license, a draft, later a refund or a claim."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description="license number, advisor name, policy or claim number")
    href: str = Field(description="the console page showing it")
    due: date | None = Field(default=None, description="the date the standard sets")
    state: str = Field(description="short code, shown as monitors.state.<state>")
    detail: str | None = Field(default=None, description="an i18n key shown after the label")


class Meter(BaseModel):
    """A count against a limit, drawn as a bar with the limit marked."""

    model_config = ConfigDict(frozen=True)

    value: int
    limit: int
    unit: str = Field(description="i18n key of the unit, e.g. monitors.unit.days")


class Figure(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    title: str = Field(default="", description="i18n key; monitors.<key>.title by default")
    explain: str = Field(default="", description="i18n key; monitors.<key>.explain by default")
    rule: str = Field(
        default="", description="i18n key of the thresholds sentence; monitors.<key>.rule"
    )
    regulation: str = Field(description="the regulation cited, e.g. R1")
    value: int = 0
    total: int | None = Field(default=None, description="the denominator when value is a rate")
    status: Status
    thresholds: dict[str, int] = Field(default_factory=dict)
    meter: Meter | None = None
    href: str
    items: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="before")
    @classmethod
    def _default_keys(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("key"):
            for field in ("title", "explain", "rule"):
                if not data.get(field):
                    data = {**data, field: f"monitors.{data['key']}.{field}"}
        return data

    @property
    def percent(self) -> int | None:
        """value / total as a whole percentage (for the bar), when a total is given."""
        if self.total is None:
            return None
        return 0 if self.total <= 0 else min(100, round(100 * self.value / self.total))


Monitor = Callable[[Session, date], Figure]


@dataclass(frozen=True)
class Registration:
    key: str
    order: int
    regulation: str
    href: str
    fn: Monitor


_registry: dict[str, Registration] = {}


def register(
    key: str, *, order: int = 100, regulation: str = "", href: str = "/console/monitors"
) -> Callable[[Monitor], Monitor]:
    """Register ``fn(db, today) -> Figure`` as the monitor ``key``.

    ``order`` places it on the page (lowest first); ``regulation`` and ``href`` are shown
    when the monitor fails.  Registering a key again replaces it (a module reloaded).
    """

    def decorate(fn: Monitor) -> Monitor:
        _registry[key] = Registration(key, order, regulation, href, fn)
        return fn

    return decorate


def unregister(key: str) -> None:
    """Forget the monitor ``key`` (tests register throwaway monitors)."""
    _registry.pop(key, None)


def registered() -> list[Registration]:
    """Every monitor, in page order (the registering modules are imported first)."""
    for name in MONITOR_MODULES:
        importlib.import_module(name)
    return sorted(_registry.values(), key=lambda r: (r.order, r.key))


def _failed(reg: Registration) -> Figure:
    return Figure(key=reg.key, regulation=reg.regulation, status="error", href=reg.href)


def evaluate(db: Session, today: date | None = None) -> list[Figure]:
    """Every registered monitor's figure for ``today`` (default ``core.clock.today()``)."""
    on = today or clock.today()
    figures: list[Figure] = []
    for reg in registered():
        try:
            with db.begin_nested():  # a failed query must not spoil the others (PostgreSQL)
                figure = reg.fn(db, on)
            if figure.key != reg.key:
                raise ValueError("a monitor answered with another key")
        except Exception as exc:
            log.warning("monitor %s failed: %s", reg.key, type(exc).__name__)
            figure = _failed(reg)
        figures.append(figure)
    return figures


def status_for(value: int, *, warning: int | None, breach: int | None) -> Status:
    """``breach`` at or above ``breach``, ``warning`` at or above ``warning``, else ``ok``."""
    if breach is not None and value >= breach:
        return "breach"
    if warning is not None and value >= warning:
        return "warning"
    return "ok"
