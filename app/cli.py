"""The `pistalka` command for operators."""

import argparse
import asyncio
import contextlib
import ctypes
import getpass
import logging
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from app import migrate
from app.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI


# The pid of `serve --workers N`'s supervisor, passed to the web processes it starts.
SUPERVISOR_PID = "PISTALKA_SERVE_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


def _exit_with_supervisor() -> None:
    """Have this web process sent SIGTERM when its supervisor dies, even by SIGKILL.

    Otherwise an orphan would go on holding the port and running the worker, and a restarted
    service would share the port with it. Linux only (prctl).
    """
    supervisor = int(os.environ.get(SUPERVISOR_PID, "0"))
    if not supervisor or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def app_with_worker() -> "FastAPI":
    """The app of one of several `serve --workers` processes, running the worker too."""
    from app.main import create_app

    _exit_with_supervisor()
    return create_app(run_background_worker=True)


def app_without_worker() -> "FastAPI":
    """The app of one of several `serve --workers --no-worker` processes."""
    from app.main import create_app

    _exit_with_supervisor()
    return create_app()


def _serve(settings: Settings, host: str, port: int, worker: bool, workers: int = 1) -> None:
    import uvicorn

    from app.main import create_app

    migrate.upgrade(settings)
    settings.server_key  # noqa: B018 - generate the data-directory secret before serving
    print(f"Píšťalka is running on http://{host}:{port}", flush=True)  # noqa: T201
    # No access log: request lines carry client addresses and, on tracking pages, secrets.
    if workers > 1:
        # Each process builds its app from the same environment and the secret written above.
        factory = "app.cli:app_with_worker" if worker else "app.cli:app_without_worker"
        os.environ[SUPERVISOR_PID] = str(os.getpid())
        uvicorn.run(
            factory,
            factory=True,
            workers=workers,
            host=host,
            port=port,
            access_log=False,
            proxy_headers=False,
        )
        return
    app = create_app(settings, run_background_worker=worker)
    uvicorn.run(app, host=host, port=port, access_log=False, proxy_headers=False)


async def _worker(settings: Settings) -> None:
    from app.db import create_engine, create_sessionmaker
    from app.worker import run_worker

    engine = create_engine(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(create_sessionmaker(engine, settings), settings, stop)
    finally:
        await engine.dispose()


async def _audit_verify(settings: Settings) -> bool:
    from sqlalchemy import select

    from app.db import create_engine, create_sessionmaker
    from app.models import Organisation
    from app.services import audit

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine, settings)() as session:
            results = await audit.verify_all(session)
            rows = await session.execute(select(Organisation.id, Organisation.slug))
            slugs = dict(rows.all())
    finally:
        await engine.dispose()
    if not results:
        print("No audit events.")  # noqa: T201
    for organisation_id, result in sorted(results.items(), key=lambda item: slugs[item[0]]):
        if result.ok:
            status = "OK"
        else:
            status = f"BROKEN at seq {result.first_broken_seq}: {result.problem}"
        print(f"{slugs[organisation_id]}: {result.checked} events checked, {status}")  # noqa: T201
    return all(result.ok for result in results.values())


def _backup_or_restore(settings: Settings, command: str, path: Path, *, force: bool) -> None:
    from app import backup

    try:
        if command == "backup":
            backup.backup(settings, path, force=force)
            print(f"Backup written to {path}.")  # noqa: T201
        else:
            backup.restore(settings, path)
            print(f"Restored {path}; the database is up to date.")  # noqa: T201
    except backup.BackupError as error:
        print(f"pistalka {command}: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    print(  # noqa: T201
        "The server secret key (PISTALKA_SECRET_KEY or PISTALKA_SECRET_KEY_FILE) is not in the "
        "backup: keep a copy of it apart from the backups; the service needs the same key."
    )


async def _purge(settings: Settings, as_of: date, dry_run: bool) -> None:
    from datetime import UTC, datetime, time, timedelta

    from sqlalchemy import select

    from app.db import create_engine, create_sessionmaker
    from app.models import Organisation
    from app.services import leaving, retention

    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine, settings)
    # Organisations cancelled more than the export window before the start of the as-of day.
    moment = datetime.combine(as_of, time(), retention.PRAGUE).astimezone(UTC)
    try:
        if not dry_run:
            erased = await retention.purge(sessionmaker, as_of)
            organisations = await leaving.erase_cancelled(sessionmaker, moment)
            await retention.reclaim(sessionmaker, reports=erased, organisations=organisations)
            print(f"Erased {erased} reports and {organisations} cancelled organisations.")  # noqa: T201
            return
        async with sessionmaker() as session:
            expired = await retention.expired_reports(session, as_of)
            slugs = dict((await session.execute(select(Organisation.id, Organisation.slug))).all())
            cutoff = moment - timedelta(days=leaving.EXPORT_WINDOW_DAYS)
            leaving_slugs = list(
                await session.scalars(
                    select(Organisation.slug).where(Organisation.cancelled_at < cutoff)
                )
            )
        for item in expired:
            print(f"report {slugs[item.organisation_id]} {item.reference}")  # noqa: T201
        for slug in leaving_slugs:
            print(f"organisation {slug}")  # noqa: T201
        print(  # noqa: T201
            f"Dry run: {len(expired)} reports and {len(leaving_slugs)} cancelled organisations "
            "would be erased; nothing was changed."
        )
    finally:
        await engine.dispose()


async def _create_operator(settings: Settings, email: str, password: str) -> None:
    import segno

    from app.db import create_engine, create_sessionmaker
    from app.errors import AppError
    from app.i18n import translations
    from app.services import operator

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine, settings)() as session, session.begin():
            created = await operator.create_operator(session, settings, email, password)
    except AppError as exc:
        message = translations("en").ugettext(exc.message)
        print(f"pistalka create-operator: {message}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    finally:
        await engine.dispose()
    print(f"Operator {created.operator.email} created. TOTP is required at every login.")  # noqa: T201
    print("Add this secret to an authenticator app now; it is not shown again:")  # noqa: T201
    print(f"  secret: {created.totp_secret}")  # noqa: T201
    print(f"  {created.totp_uri}")  # noqa: T201
    segno.make(created.totp_uri, error="m").terminal(compact=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pistalka", description="Píšťalka operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema up to date")
    serve = commands.add_parser("serve", help="run the web service (and the worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not run the worker here")
    serve.add_argument(
        "--workers", type=int, default=1, help="web processes (rate limits count per process)"
    )
    commands.add_parser("worker", help="run the background worker alone")
    audit = commands.add_parser("audit", help="audit trail commands")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="check every organisation's audit chain")
    backup_help = (
        "Report contents are in the backup only as ciphertext. Back up the server secret key "
        "(PISTALKA_SECRET_KEY or PISTALKA_SECRET_KEY_FILE) separately and keep it apart: without "
        "it tracking codes and sealed server data do not work after a restore."
    )
    backup = commands.add_parser(
        "backup", help="write a consistent snapshot of the database", description=backup_help
    )
    backup.add_argument("file", type=Path)
    backup.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty database", description=backup_help
    )
    restore.add_argument("file", type=Path)
    purge = commands.add_parser(
        "purge", help="erase reports past the 5-year retention and organisations that left"
    )
    purge.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD (default: today)")
    purge.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    create_operator = commands.add_parser(
        "create-operator",
        help="create an operator account for the console at /operator (TOTP required)",
    )
    create_operator.add_argument("email")
    create_operator.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    if args.command == "migrate":
        migrate.upgrade(settings)
        print("Database is up to date.")  # noqa: T201
    elif args.command == "serve":
        _serve(settings, args.host, args.port, worker=not args.no_worker, workers=args.workers)
    elif args.command == "worker":
        migrate.upgrade(settings)
        asyncio.run(_worker(settings))
    elif args.command == "purge":
        from app.models.base import utcnow
        from app.services.deadlines import local_date

        today = local_date(utcnow())
        as_of = args.as_of or today
        if as_of > today and not args.dry_run:
            # A future date would erase reports still within retention and organisations
            # still within their export window.
            purge.error(
                f"--as-of {as_of.isoformat()} is after today ({today.isoformat()}): a purge "
                "would erase what must still be kept; add --dry-run to see what would go then"
            )
        if not args.dry_run:
            migrate.upgrade(settings)
        asyncio.run(_purge(settings, as_of, args.dry_run))
    elif args.command == "create-operator":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password (12 characters or more): ")
            if getpass.getpass("Again: ") != password:
                print("pistalka create-operator: the passwords differ", file=sys.stderr)  # noqa: T201
                raise SystemExit(1)
        migrate.upgrade(settings)
        asyncio.run(_create_operator(settings, args.email, password))
    elif args.command == "audit" and args.audit_command == "verify":
        if not asyncio.run(_audit_verify(settings)):
            raise SystemExit(1)
    elif args.command in ("backup", "restore"):
        _backup_or_restore(settings, args.command, args.file, force=getattr(args, "force", False))


if __name__ == "__main__":
    main()
