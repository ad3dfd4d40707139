"""The `segmint` command line: parses arguments, builds the settings once, calls the packages.

Each command imports its implementation lazily, and the settings are read only when a command
asks for them, so `segmint --help` imports click alone and a command that computes nothing
(`runs`, `jobs`, `users`, `export`) no analytics library (tests/segmint/test_cli_imports.py).
Expected failures (SegmintError and its subclasses) end with one line on stderr and exit status
1, no traceback.

The commands that read a run's results (export, clv, outcomes, evaluate) live in
segmint.cli_results, the `users` group in segmint.cli_users, and the Context they share in
segmint.cli_context; all are added to the `cli` group here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from engine.errors import SegmintError

from .cli_context import Context, parse_date, pass_context
from .cli_results import clv_command, evaluate_command, export_command, outcomes_command
from .cli_users import users_group

log = logging.getLogger("segmint")



def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "apscheduler.executors", "twilio.http_client",
                  "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Settings file (default: ./config.toml). SEGMINT_DATABASE_URL overrides the DB.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Segmint: customer segments retailers act on (RFM, k-means, six classes, basket rules,
    recommendations, dashboard, offer SMS)."""
    configure_logging(verbose)
    if isinstance(ctx.obj, Context):  # main() made it, to name the database in its errors
        ctx.obj.use_config(config_path)
    else:
        ctx.obj = Context(config_path)


@cli.command("init-db")
@pass_context
def init_db_command(context: Context) -> None:
    """Create or upgrade the database schema (migrations); safe to run again."""
    from engine.store import describe, init_db

    db = context.engine(require_schema=False)
    revision = init_db(engine=db)
    click.echo(f"database {describe(context.settings.database_url)} at revision {revision}")


@cli.command("run")
@click.option("--as-of", "as_of", default=None, help="Reference date (default: the day after the "
              "last transaction in the window).")
@click.option("--since", default=None, help="First day of the window (inclusive).")
@click.option("--until", default=None, help="Last day of the window (inclusive).")
@click.option("--k", "k", default=None, help="auto, or a fixed number of clusters "
              "(default: clustering.k in the config).")
@click.option("--backend", type=click.Choice(["pandas", "spark"]), default=None,
              help="Where the work that grows with the lines runs (default: [engine] backend "
              "in the config); the results are the same.")
@pass_context
def run_command(context: Context, as_of: str | None, since: str | None, until: str | None,
                k: str | None, backend: str | None) -> None:
    """One segmentation run, published atomically; prints the run id."""
    from engine.pipeline import execute_run

    clusters: int | str | None = None
    if k is not None:
        if k.strip().lower() == "auto":
            clusters = "auto"
        elif k.strip().isdigit() and 2 <= int(k) <= 30:
            clusters = int(k)
        else:
            raise click.BadParameter(f"{k!r} is not 'auto' or a whole number 2..30",
                                     param_hint="--k")
    from engine.store.locks import job_lock

    window = {"as_of": parse_date(as_of, "--as-of"), "since": parse_date(since, "--since"),
              "until": parse_date(until, "--until")}  # before the database: options first
    db = context.engine()
    # The scheduler's segment job takes the same lock: never two runs at once (LockBusy is a
    # one-line error naming the holder).
    with job_lock(engine=db, name="segment", holder="cli run",
                  ttl_seconds=context.settings.scheduler.lock_ttl_seconds):
        run_id = execute_run(db, context.settings, **window, k=clusters,  # type: ignore[arg-type]
                             progress=True, backend=backend)  # type: ignore[arg-type]
    click.echo(run_id)


@cli.command("runs")
@click.option("--json", "as_json", is_flag=True, help="One JSON array for machines.")
@pass_context
def runs_command(context: Context, as_json: bool) -> None:
    """Run history: id, status, started, finished, window, k, n_customers (newest first)."""
    import json

    from engine.store.runs import list_run_rows

    rows = [_run_row(run) for run in list_run_rows(engine=context.engine())]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ["id", "status", "started", "finished", "window", "k", "n_customers"]
    table = [headers] + [[str(row[name] if row[name] is not None else "-") for name in headers]
                         for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                   .rstrip())


def _run_row(run: dict[Any, Any]) -> dict[str, Any]:
    """A run (a row of `list_run_rows`) for display: ISO timestamps (UTC, seconds), window as
    'since..until'."""
    def stamp(value: Any) -> str | None:
        return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None

    def day(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    def number(value: Any) -> int | None:
        return int(value) if value is not None else None

    window = f"{day(run['since']) or 'start'}..{day(run['until']) or 'end'}"
    return {"id": int(run["id"]), "status": run["status"], "started": stamp(run["started_at"]),
            "finished": stamp(run["finished_at"]), "window": window, "as_of": day(run["as_of"]),
            "k": number(run["k"]), "k_mode": run["k_mode"],
            "n_customers": number(run["n_customers"]), "error": run["error"]}


@cli.command("send-offers")
@click.option("--dry-run", is_flag=True, default=False,
              help="Record and print the messages without calling Twilio (the default when "
                   "Twilio credentials are not set).")
@pass_context
def send_offers_command(context: Context, dry_run: bool) -> None:
    """One offer pass over the latest published run: consent, opt-outs, frequency cap and quiet
    hours checked; each offer sent at most once per customer."""
    from notifications.offers import send_offers

    summary = send_offers(context.engine(), context.settings, dry_run=True if dry_run else None)
    for phone, body in summary.previews:
        click.echo(f"  {phone}  {body}")
    for line in summary.lines():
        click.echo(line)


@cli.command("ingest")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--customers", "customers_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A customers file (customer_id, first_name, phone, signup_date, "
              "country, sms_consent, timezone) loaded in the same transaction.")
@click.option("--preset", type=click.Choice(["online-retail", "online-retail-ii", "generic"]),
              default=None, help="Column layout (default: settings ingest.default_preset when its "
              "columns fit, else the first preset that fits).")
@click.option("--offer-pass", "offer_pass_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A past offer pass to record in the offer ledger after the "
              "lines (generate-demo-data --past-offer writes one: offer_pass.csv).")
@pass_context
def ingest_command(context: Context, path: Path, customers_path: Path | None,
                   preset: str | None, offer_pass_path: Path | None) -> None:
    """Load transactions from PATH (CSV, CSV.gz, XLSX or Parquet); idempotent, all or nothing.

    Prints read / loaded / duplicates skipped / rejected; rejected rows go to a report file
    (settings ingest.rejects_dir) with their line number and reason.
    """
    from engine.ingest import ingest_file

    summary = ingest_file(context.engine(), context.settings, path, preset=preset,
                          customers=customers_path, progress=sys.stderr.isatty())
    click.echo(summary.summary_line())
    for note in summary.notes:
        click.echo(f"note: {note}")
    if summary.customers is not None:
        click.echo(summary.customers.summary_line())
    if offer_pass_path is not None:
        from engine.offer_outcomes import record_offer_pass_file

        added, known = record_offer_pass_file(context.engine(), offer_pass_path)
        click.echo(f"offer pass {offer_pass_path}: {added:,} ledger rows recorded, "
                   f"{known:,} already there")


@cli.command("generate-demo-data")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--customers", "n_customers", type=click.IntRange(min=10), default=2000,
              show_default=True, help="Number of customers (about 50 lines each).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed: the same seed writes the same bytes.")
@click.option("--past-offer", is_flag=True,
              help="Also a past offer pass with a known true effect (offer_pass.csv, for "
              "`ingest --offer-pass`) and the purchases that followed it.")
@pass_context
def generate_demo_data_command(context: Context, outdir: Path, n_customers: int,
                               seed: int, past_offer: bool) -> None:
    """Write a synthetic retailer to OUTDIR: transactions.csv and customers.csv (generic preset)."""
    from engine.demo import PastOffer, generate_demo_data

    result = generate_demo_data(outdir, customers=n_customers, seed=seed,
                                past_offer=PastOffer() if past_offer else None)
    click.echo(f"wrote {result.transactions_path} ({result.lines:,} lines) and "
               f"{result.customers_path} ({result.customers:,} customers)")
    if result.offer_pass_path is not None:
        click.echo(f"wrote {result.offer_pass_path} (a past offer pass to "
                   f"{result.offer_pass_customers:,} customers, true uplift "
                   f"{result.true_uplift:+.1f} points)")


@cli.command("scheduler")
@click.option("--interval", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="Run the pipeline job every SECONDS instead of its cron schedule.")
@click.pass_context
def scheduler_command(ctx: click.Context, interval: int | None) -> None:
    """The APScheduler process: inbox pick-up, segmentation runs, offers (until SIGTERM)."""
    from jobs.scheduler import run_scheduler

    context = ctx.find_object(Context)
    assert context is not None  # cli() made it
    config_path = ctx.find_root().params.get("config_path")
    status = run_scheduler(context.settings, context.engine(), config_path=config_path,
                           interval=interval)
    ctx.exit(status)


@cli.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="One JSON array for machines.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Newest rows to show.")
@pass_context
def jobs_command(context: Context, as_json: bool, limit: int) -> None:
    """Job history: id, job, trigger, started, finished, status, error, run id (newest first)."""
    import json

    from engine.store.jobs import list_jobs

    rows: list[dict[str, Any]] = [{"id": row.id, "job": row.job_id, "trigger": row.trigger,
             "started": row.started_at.isoformat(timespec="seconds"),
             "finished": row.finished_at.isoformat(timespec="seconds") if row.finished_at
             else None, "status": row.status, "error": row.error, "run_id": row.run_id,
             "details": row.details} for row in list_jobs(engine=context.engine(), limit=limit)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no jobs have run yet (start `segmint scheduler`)")
        return
    click.echo(f"{'id':>5}  {'job':<9} {'status':<9} {'started':<25} {'finished':<25} "
               f"{'run':>4}  trigger / error")
    for row in rows:
        note = row["error"] or row["details"].get("reason") or ""
        click.echo(f"{row['id']:>5}  {row['job']:<9} {row['status']:<9} {row['started']:<25} "
                   f"{row['finished'] or '-':<25} {row['run_id'] or '-':>4}  {row['trigger']}"
                   f"{'  ' + note if note else ''}")


@cli.command("demo")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Dashboard port (default: dashboard.port in the config).")
@click.option("--interval", type=click.IntRange(min=1), default=60, show_default=True,
              metavar="SECONDS", help="How often the demo scheduler runs the pipeline.")
@click.option("--customers", "n_customers", type=click.IntRange(min=10), default=2000,
              show_default=True, help="Customers in the generated demo data (first time only).")
@click.pass_context
def demo_command(ctx: click.Context, port: int | None, interval: int, n_customers: int) -> None:
    """Sample data, init-db, ingest, one run, a demo login, then scheduler + dashboard."""
    from segmint.demo import run_demo

    context = ctx.find_object(Context)
    assert context is not None  # cli() made it
    config_path = ctx.find_root().params.get("config_path")
    ctx.exit(run_demo(context.settings, config_path=config_path, port=port, interval=interval,
                      customers=n_customers))


@cli.command("serve")
@click.option("--host", default=None, help="Address to bind (default: dashboard.host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default: dashboard.port).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="gunicorn workers (default: dashboard.workers).")
@pass_context
def serve_command(context: Context, host: str | None, port: int | None,
                  workers: int | None) -> None:
    """The dashboard behind gunicorn; login required (create accounts with `users add`)."""
    from dashboard.serve import serve

    context.engine()  # stop now with one line when the database or its schema is missing
    serve(context.settings, host=host, port=port, workers=workers)


for _command in (export_command, clv_command, outcomes_command, users_group, evaluate_command):
    cli.add_command(_command)


def usage_error_line(exc: click.UsageError) -> str:
    """Click's usage error (usage, a hint, a blank line, 'Error: ...') as the one line the
    README promises: the command, the problem, where to read more."""
    command = exc.ctx.command_path if exc.ctx is not None else "segmint"
    return f"{command}: {exc.format_message()} (see '{command} --help')"


def database_error_line(url: str | None, exc: BaseException) -> str:
    """A database's refusal (read-only, locked, full, gone) as one line naming the database."""
    from engine.store.db import database_message

    return database_message(url, exc)


def _is_database_error(exc: BaseException) -> bool:
    """A DB-API error SQLAlchemy raised (checked without importing SQLAlchemy: when it is not
    loaded, no such error can have been raised)."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.DBAPIError)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: expected failures become one `error:` line on stderr, exit
    status 1 (2 for a wrong command, option or argument, Click's usage status)."""
    context = Context()
    try:
        status = cli.main(args=argv, prog_name="segmint", standalone_mode=False, obj=context)
        if isinstance(status, int) and status:
            sys.exit(status)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"error: {usage_error_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SegmintError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        log.debug("database error", exc_info=True)  # -v; parameters hidden by the engine
        click.echo(f"error: {database_error_line(context.database_url, exc)}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
