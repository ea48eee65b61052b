"""The ``covernet`` command: migrate, load the catalog, create accounts, serve."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core.config import get_settings
from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError

app = typer.Typer(help="Covernet: sell and service insurance online.", no_args_is_help=True)
catalog_app = typer.Typer(help="The product catalog.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts.", no_args_is_help=True)
key_app = typer.Typer(help="Machine API keys and encryption keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="key")
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True)

DEMO_STAFF = (
    ("advisor", "advisor", "王顾问"),
    ("claims", "claims", "李理赔"),
    ("compliance", "compliance", "赵合规"),
    ("ops", "ops", "钱运营"),
    ("admin", "admin", "孙管理"),
)
DEMO_CUSTOMER = ("13800138000", "张小满")


def _fail(error: CovernetError) -> None:
    err.print(f"[bold red]error[/] ({error.code}): {error.message}")
    detail = error.detail
    if isinstance(detail, dict) and isinstance(detail.get("errors"), list):
        for item in detail["errors"]:
            err.print(f"  • {item}")
    raise typer.Exit(2)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from covernet.core.migrate import upgrade

    with console.status("migrating the database…"):
        upgrade()
    console.print(f"[green]database is up to date[/] ({_safe_url()})")


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def _load_catalog(directory: Path) -> None:
    from covernet.catalog.loader import load_catalog
    from covernet.catalog.service import load_into_db

    with _progress() as progress:
        task = progress.add_task("reading the catalog", total=2)
        catalog = load_catalog(directory)
        _check_rules(directory, catalog)  # the rule files must agree with it too
        progress.update(task, advance=1, description=f"storing {len(catalog.products)} products")
        with unit_of_work() as db:
            report = load_into_db(db, catalog)
        progress.update(task, advance=1, description="catalog stored")
    table = Table(title=f"catalog revision {report.revision}")
    table.add_column("change")
    table.add_column("products")
    for label, codes in (
        ("new", report.created),
        ("new version", report.updated),
        ("unchanged", report.unchanged),
        ("unlisted", report.unlisted),
    ):
        table.add_row(label, ", ".join(codes) or "—")
    console.print(table)


def _check_rules(directory: Path, catalog: Any) -> str:
    """Validate the rule files that refer to the catalog (referral rewards, offers)."""
    from covernet.social import offer_rules, rewards

    referral = rewards.load(directory, catalog)
    offers = offer_rules.load(directory, catalog)
    return f"{len(referral.rewards)} referral rewards, {len(offers.rules)} offer rules"


@catalog_app.command("load")
def catalog_load(
    directory: Annotated[Path | None, typer.Argument(help="catalog folder")] = None,
) -> None:
    """Validate the YAML catalog and store changed products as new versions."""
    try:
        _load_catalog(directory or get_settings().catalog_dir)
    except CovernetError as exc:
        _fail(exc)


@catalog_app.command("check")
def catalog_check(
    directory: Annotated[Path | None, typer.Argument(help="catalog folder")] = None,
) -> None:
    """Validate the YAML catalog without touching the database."""
    from covernet.catalog.loader import load_catalog

    folder = directory or get_settings().catalog_dir
    try:
        catalog = load_catalog(folder)
        rules = _check_rules(folder, catalog)
    except CovernetError as exc:
        _fail(exc)
    console.print(
        f"[green]valid[/]: {len(catalog.insurers)} insurers, {len(catalog.products)} products, "
        + rules
    )


def _read_password(prompt: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\n")


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="login name (staff)")],
    role: Annotated[str, typer.Option(help="advisor, claims, compliance, ops or admin")],
    name: Annotated[str | None, typer.Option(help="display name")] = None,
) -> None:
    """Create a staff account; the password is read from standard input.

    Prints the TOTP enrolment URI to scan into an authenticator app.
    """
    from covernet.identity import service
    from covernet.identity.models import Role

    try:
        role_value = Role(role)
    except ValueError:
        err.print(f"[red]error[/] (invalid_role): unknown role '{role}'")
        raise typer.Exit(2) from None
    password = _read_password("password")
    try:
        with unit_of_work() as db:
            enrolment = service.add_staff(
                db, username=username, role=role_value, password=password, name=name or username
            )
    except CovernetError as exc:
        _fail(exc)
    console.print(f"[green]created[/] {enrolment.user.username} ({role_value.value})")
    console.print("TOTP enrolment URI (scan it into an authenticator app):")
    console.print(enrolment.totp_uri, soft_wrap=True)


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Argument(help="who the key is for")],
    role: Annotated[str, typer.Option(help="insurer or partner")],
    insurer: Annotated[str | None, typer.Option(help="insurer code (insurer keys)")] = None,
) -> None:
    """Create a machine API key; it is shown once."""
    from covernet.identity import service
    from covernet.identity.models import Role

    try:
        with unit_of_work() as db:
            issued = service.create_api_key(db, name=name, role=Role(role), insurer_code=insurer)
    except (CovernetError, ValueError) as exc:
        if isinstance(exc, CovernetError):
            _fail(exc)
        err.print(f"[red]error[/] (invalid_role): unknown role '{role}'")
        raise typer.Exit(2) from None
    console.print(f"[green]API key for {name}[/] (shown once): {issued.key}")


@key_app.command("new-field-key")
def key_new_field(key_id: Annotated[str, typer.Argument(help="an id for the new key")]) -> None:
    """Print a new field-encryption key entry to put first in COVERNET_FIELD_KEYS."""
    from covernet.core.crypto import new_key_entry

    console.print(new_key_entry(key_id))


@key_app.command("rotate")
def key_rotate() -> None:
    """Re-encrypt stored personal data with the first key of COVERNET_FIELD_KEYS.

    Afterwards the older keys can be removed from COVERNET_FIELD_KEYS.
    """
    from covernet.claims.service import rotate_field_keys as rotate_claims
    from covernet.identity.service import rotate_field_keys as rotate_identity
    from covernet.notify.notifiers import rotate_field_keys as rotate_sms
    from covernet.payments.payouts import rotate_field_keys as rotate_payouts
    from covernet.policies.applications import rotate_field_keys as rotate_applications
    from covernet.policies.quotes import rotate_field_keys as rotate_quotes

    domains = (
        ("accounts", rotate_identity),
        ("quotes", rotate_quotes),
        ("applications", rotate_applications),
        ("claims", rotate_claims),
        ("payouts", rotate_payouts),
        ("sandbox sms", rotate_sms),
    )
    total = 0
    with _progress() as progress:
        task = progress.add_task("re-encrypting", total=len(domains))
        for label, rotate in domains:
            progress.update(task, description=f"re-encrypting {label}")
            with unit_of_work() as db:
                count = rotate(db)
                total += count
                audit.record(
                    db,
                    "crypto.rotate_keys",
                    subject_type="domain",
                    subject_id=label,
                    detail={"reencrypted": count},
                )
            progress.advance(task)
    console.print(f"[green]re-encrypted {total} values[/] with the active key")


@app.command()
def purge() -> None:
    """Delete or scrub personal data past its retention (R30); run it daily."""
    from covernet.identity.service import purge_login_attempts
    from covernet.policies.quotes import scrub_expired_quotes

    with unit_of_work() as db:
        attempts = purge_login_attempts(db)
        quotes = scrub_expired_quotes(db)
        audit.record(
            db, "retention.purge", detail={"login_records": attempts, "quotes_scrubbed": quotes}
        )
    console.print(f"[green]purged[/] {attempts} login records; scrubbed {quotes} expired quotes")


@app.command()
def jobs() -> None:
    """Run the periodic jobs once: stale payments, renewal reminders, policy expiry."""
    from covernet.policies.tasks import run_all

    with console.status("running the periodic jobs…"):
        done = run_all()
    console.print(", ".join(f"{name}: {count}" for name, count in done.items()))


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; name the first entry that was altered, inserted or removed."""
    with console.status("verifying the audit log…"), unit_of_work() as db:
        result = audit.verify(db)
    if result.ok:
        console.print(f"[green]the audit log is intact[/]: {result.checked} entries")
        return
    err.print(f"[bold red]the audit log was tampered with[/]: {result.problem}")
    raise typer.Exit(1)


def create_demo_accounts(db: Session) -> list[tuple[str, str, str, str]]:
    """Demo staff and customer; existing ones are left as they are. Returns table rows."""
    from covernet.identity import service
    from covernet.identity.models import Role, User

    password = get_settings().demo_password
    rows = []
    for username, role, name in DEMO_STAFF:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            user = service.add_staff(
                db, username=username, role=Role(role), password=password, name=name
            ).user
        secret = service.staff_totp_secret(user) or ""
        rows.append((username, role, password, secret))
    mobile, name = DEMO_CUSTOMER
    if db.scalar(select(User.id).where(User.mobile_index == service.mobile_index(mobile))) is None:
        service.register_customer(db, mobile=mobile, password=password, name=name)
    rows.append((mobile, "customer", password, ""))
    _demo_license(db)
    _demo_desk_agent(db)
    return rows


def _demo_desk_agent(db: Session) -> None:
    """The demo advisor works at the desk: every line, online."""
    from covernet.catalog.spec import Line
    from covernet.consult import service as desk
    from covernet.consult.models import Availability
    from covernet.identity.models import User

    advisor = db.scalar(select(User).where(User.username == "advisor"))
    if advisor is not None and desk.agent(db, advisor.id) is None:
        desk.set_agent(
            db, advisor.id, skills=[line.value for line in Line], availability=Availability.online
        )


DEMO_LICENSE_NO = "02000111000080002026000001"
DEMO_POLICY_DAYS_AGO = 40  # bought this long ago: in force, past its 30-day waiting period


def create_demo_policy() -> str | None:
    """The demo customer's medical policy, bought through the real flow (quote, apply,
    sandbox payment, callback, underwriting) with the clock set back, so claims can be
    tried at once.  Nothing happens when the customer already holds a policy."""
    from datetime import date, timedelta

    from covernet.catalog import service as catalog
    from covernet.core import clock
    from covernet.core.cn_identity import make_id_number
    from covernet.identity import service as identity
    from covernet.identity.access import Principal
    from covernet.identity.models import Role, User
    from covernet.payments import providers
    from covernet.payments import service as payments
    from covernet.payments.providers import sandbox
    from covernet.policies import applications, policies
    from covernet.policies.models import Application
    from covernet.policies.quotes import InsuredIn, QuoteIn, create_quote

    with unit_of_work() as db:
        user = db.scalar(
            select(User).where(User.mobile_index == identity.mobile_index(DEMO_CUSTOMER[0]))
        )
        if user is None or policies.of_customer(db, user.id):
            return None
        who = Principal(role=Role.customer, user_id=user.id, name=user.name)
    id_number = make_id_number("310104", date(1988, 6, 1), 37)
    with clock.shifted(timedelta(days=-DEMO_POLICY_DAYS_AGO)):
        with unit_of_work() as db:
            quote = create_quote(
                db,
                QuoteIn(
                    product_code="medical-million",
                    plan_code="standard",
                    insured=InsuredIn(id_number=id_number, region="310000"),
                ),
                who,
            ).quote
            product = catalog.snapshot(db).get("medical-million").product
            docs = applications.documents_for(db, product)
            app, _ = applications.apply(
                db,
                who,
                applications.ApplicationIn(
                    quote_id=quote.id,
                    applicant={"name": DEMO_CUSTOMER[1], "id_number": id_number},
                    relationship="self",
                    health_answers={q.code: False for q in product.health_questions},
                    acknowledgements={d.code: d.content_hash for d in docs},
                ),
                ip="127.0.0.1",
                user_agent="covernet demo",
            )
            assert app.payment_id is not None
            sandbox.complete(db, app.payment_id, "succeeded")
        with unit_of_work() as db:  # the provider's callback, as it would arrive
            for row in sandbox.pending_callbacks(db):
                body = row.payload.encode()
                event = providers.get().verify_callback(sandbox.signed_headers(body), body)
                payments.handle_event(db, "sandbox", event)
            stored = db.get(Application, app.id)
            issued = applications.policy_of(db, stored) if stored is not None else None
            return issued.policy_no if issued else None


def _demo_license(db: Session) -> None:
    """The demo advisor holds a (fictional) license for every line, valid for a year."""
    from datetime import timedelta

    from covernet.catalog.spec import Line
    from covernet.compliance import licenses
    from covernet.core import clock
    from covernet.identity.models import User

    advisor = db.scalar(select(User).where(User.username == "advisor"))
    if advisor is None or licenses.license_of(db, advisor.id) is not None:
        return
    licenses.register(
        db,
        licenses.LicenseIn(
            license_no=DEMO_LICENSE_NO,
            advisor_username="advisor",
            institution="示例安心财产保险股份有限公司（演示）",
            valid_until=clock.today() + timedelta(days=365),
            lines=list(Line),
            grade="demo",
        ),
        by=audit.SYSTEM,
    )


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="then serve")] = False,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Migrate, load the demo catalog, create demo accounts (safe to run twice)."""
    from covernet.core.config import DEMO_PASSWORD, Environment
    from covernet.core.migrate import upgrade

    settings = get_settings()
    if settings.env is Environment.production and settings.demo_password == DEMO_PASSWORD:
        err.print(
            "[red]error[/] (demo_in_production): refusing to create demo accounts with the "
            "public demo password in production; set COVERNET_DEMO_PASSWORD"
        )
        raise typer.Exit(2)

    try:
        with console.status("migrating the database…"):
            upgrade()
        _load_catalog(get_settings().catalog_dir)
        with unit_of_work() as db:
            rows = create_demo_accounts(db)
    except CovernetError as exc:
        _fail(exc)
    policy_no = create_demo_policy()
    if policy_no:
        console.print(f"demo policy of {DEMO_CUSTOMER[0]}: {policy_no} (in force: try a claim)")
    _print_logins(rows, host, port)
    if serve_after:
        stop = _demo_background()
        try:
            serve(host=host, port=port, workers=1)
        finally:
            stop.set()


def _demo_background() -> threading.Event:
    """What production runs as ``covernet worker`` and a cron of ``covernet jobs``, in
    threads of the demo's one process, so insurer sync and expiries happen by themselves."""
    from covernet.integration import worker as delivery
    from covernet.policies.tasks import run_all

    stop = threading.Event()

    def jobs_loop() -> None:
        while not stop.wait(60):
            try:
                run_all()
            except Exception as exc:  # the next round tries again
                err.print(f"[yellow]jobs[/]: {type(exc).__name__}")

    threading.Thread(
        target=delivery.run,
        kwargs={"worker_id": "demo", "interval": 2.0, "stop": stop},
        name="demo-outbox",
        daemon=True,
    ).start()
    threading.Thread(target=jobs_loop, name="demo-jobs", daemon=True).start()
    console.print("insurer sync and periodic jobs run in this process (demo)")
    return stop


def _print_logins(rows: list[tuple[str, str, str, str]], host: str, port: int) -> None:
    settings = get_settings()
    table = Table(title="demo logins")
    table.add_column("login (username / mobile)")
    table.add_column("role")
    table.add_column("password")
    table.add_column("TOTP secret (staff)", overflow="fold")
    for login, role, password, secret in rows:
        table.add_row(login, role, password, secret or "—")
    console.print(table)
    mfa = settings.staff_mfa.value
    console.print(
        f"staff sign-in code: {mfa} (COVERNET_STAFF_MFA); add the TOTP secret to any "
        "authenticator app, or run `covernet user totp USERNAME` for the current code"
    )
    console.print(
        f"\n[bold green]Covernet is at http://{host}:{port}[/]  "
        f"(API docs: http://{host}:{port}/docs)\n"
    )


@user_app.command("totp")
def user_totp(username: Annotated[str, typer.Argument(help="staff username")]) -> None:
    """Print a staff member's current 6-digit code (for demos and support)."""
    from covernet.audit import service as audit
    from covernet.identity import service
    from covernet.identity.models import User

    with unit_of_work() as db:
        user = db.scalar(select(User).where(User.username == username.strip().lower()))
        secret = service.staff_totp_secret(user) if user else None
        if not secret or user is None:
            err.print(f"[red]error[/] (not_found): no staff account '{username}' with TOTP")
            raise typer.Exit(2)
        audit.record(db, "user.totp_shown", subject_type="user", subject_id=user.id)
    console.print(service.current_totp(secret))


@user_app.command("reset-totp")
def user_reset_totp(username: Annotated[str, typer.Argument(help="staff username")]) -> None:
    """Give a staff member a new TOTP secret (lost phone): old codes stop working and the
    account's sessions end.  Prints the new enrolment URI."""
    from covernet.identity import service

    try:
        with unit_of_work() as db:
            enrolment = service.reset_totp(db, username)
    except CovernetError as exc:
        _fail(exc)
    console.print(f"[green]new TOTP secret[/] for {enrolment.user.username}; sessions ended")
    console.print(enrolment.totp_uri, soft_wrap=True)


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="deliver what is due, then stop")] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls when idle")] = 2.0,
    batch: Annotated[int, typer.Option(min=1, max=500, help="rows claimed at a time")] = 20,
    name: Annotated[str | None, typer.Option(help="worker id (default host:pid:random)")] = None,
) -> None:
    """Deliver the outbox to insurers (R19); run as many as you like side by side.
    SIGTERM or Ctrl-C stops after the batch in hand."""
    from covernet.integration import worker as delivery
    from covernet.integration.outbox import BatchReport

    worker_id = name or delivery.default_worker_id()

    def show(report: BatchReport) -> None:
        if report.claimed:
            console.print(
                f"claimed {report.claimed}: [green]{len(report.delivered)} delivered[/], "
                f"[yellow]{len(report.retrying)} to retry[/], [red]{len(report.dead)} dead[/]"
            )

    total = delivery.run(
        worker_id=worker_id,
        once=once,
        interval=interval,
        batch=batch,
        on_batch=show,
        on_ready=lambda: console.print(f"worker [bold]{worker_id}[/] delivering the outbox"),
    )
    console.print(f"worker {worker_id} stopped; {total} delivered")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Serve the web app and API with uvicorn (with several workers, each on a socket
    of its own, so connections are spread evenly: see ``covernet.serving``)."""
    from covernet import serving

    console.print(f"serving on http://{host}:{port} with {workers} worker(s)")
    try:
        code = serving.serve(
            {
                "app": "covernet.app:create_app",
                "proxy_headers": True,
                "forwarded_allow_ips": get_settings().trusted_proxies,
                "factory": True,
                "host": host,
                "port": port,
                "log_level": os.environ.get("COVERNET_LOG_LEVEL", "info"),
                "access_log": False,
            },
            workers,
        )
    except OSError as exc:
        console.print(f"[red]cannot listen on {host}:{port}: {exc.strerror or exc}[/]")
        raise typer.Exit(serving.STARTUP_FAILURE) from None
    if code:
        raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
