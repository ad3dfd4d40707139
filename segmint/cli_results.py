"""The `segmint` commands that read a run's results: export, clv, outcomes, evaluate.

Registered on the group in segmint.cli; each imports its implementation lazily (only click at
module level), so `segmint export` still imports no analytics library.
"""

from __future__ import annotations

import json
import sys

import click

from engine.errors import SegmintError

from .cli_context import Context, parse_date, pass_context


@click.command("export")
@click.argument("kind", type=click.Choice(
    ["segments", "rules", "recommendations", "profiles", "transitions", "clv", "kpis",
     "offers"]))
@click.option("--run", "run_ref", default="latest", show_default=True,
              help="Run id or 'latest' (the published run).")
@click.option("--from", "from_ref", default=None, help="transitions: the earlier run.")
@click.option("--to", "to_ref", default=None, help="transitions: the later run (default latest).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="CSV file to write (default: standard output).")
@pass_context
def export_command(context: Context, kind: str, run_ref: str, from_ref: str | None,
                   to_ref: str | None, output: str | None) -> None:
    """CSV of a run's segments, rules, recommendations, profiles, CLV, KPIs per segment, the
    class transitions between two runs (--from RUN --to RUN), or the offer ledger with each row's
    group and attributed conversion (offers: every run)."""
    from engine.exports import write_csv
    from engine.store import results as result_store
    from engine.store import runs as run_store

    db = context.engine()
    if kind == "transitions":
        if from_ref is None:
            raise click.UsageError("export transitions needs --from RUN (and --to RUN, "
                                   "default latest)")
        before = run_store.resolve_run(engine=db, ref=from_ref)
        after = run_store.resolve_run(engine=db, ref=to_ref or run_ref)
        frame = result_store.transitions(engine=db, from_run=before, to_run=after)
    elif kind == "clv":
        from engine.store.clv import read_customers

        frame = read_customers(engine=db, run_id=run_store.resolve_run(engine=db, ref=run_ref))
    elif kind == "offers":
        from engine.offer_outcomes import load_outcomes, offer_export

        frame = offer_export(load_outcomes(db, context.settings))
    elif kind == "kpis":
        from engine.offer_outcomes import run_kpis

        frame = run_kpis(db, context.settings, run_id=run_store.resolve_run(engine=db,
                                                                            ref=run_ref))
    else:
        run_id = run_store.resolve_run(engine=db, ref=run_ref)
        reader = {"segments": result_store.read_segments, "rules": result_store.read_rules,
                  "recommendations": result_store.read_recommendations,
                  "profiles": result_store.read_profiles}[kind]
        frame = reader(engine=db, run_id=run_id)
    neutralise = context.settings.export.neutralise_formulas
    if output is None:
        write_csv(kind, frame, sys.stdout, neutralise=neutralise)
        return
    try:
        rows = write_csv(kind, frame, output, neutralise=neutralise)
    except OSError as exc:
        raise click.FileError(output, hint=exc.strerror or str(exc)) from None
    click.echo(f"{rows} rows written to {output}", err=True)


@click.command("clv")
@click.option("--run", "run_ref", default="latest", show_default=True,
              help="Run id or 'latest' (the published run).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object for machines.")
@pass_context
def clv_command(context: Context, run_ref: str, as_json: bool) -> None:
    """The run's fitted BG/NBD and Gamma-Gamma parameters, backtest and notes."""
    from engine.clv import describe_fit
    from engine.store import runs as run_store
    from engine.store.clv import read_fit

    db = context.engine()
    run_id = run_store.resolve_run(engine=db, ref=run_ref)
    fit = read_fit(engine=db, run_id=run_id)
    if fit is None:
        raise SegmintError(f"run {run_id} has no CLV (made before CLV existed, or with "
                           "[clv] enabled = false)")
    if as_json:
        click.echo(json.dumps({"run_id": run_id, **fit}, indent=2))
        return
    click.echo(f"run {run_id}")
    for line in describe_fit(fit):
        click.echo(line)


@click.command("outcomes")
@click.option("--offer", "offer_id", default=None, help="Only this offer (default: every offer).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: a list, one object per "
              "offer.")
@pass_context
def outcomes_command(context: Context, offer_id: str | None, as_json: bool) -> None:
    """What each offer brought: treatment against holdout, uplift in conversion points with a
    95 % interval, incremental revenue and the smallest detectable uplift (MDE)."""
    from engine.offer_outcomes import load_outcomes, outcome_lines, outcome_records

    outcomes = load_outcomes(context.engine(), context.settings, offer_id=offer_id)
    if as_json:
        click.echo(json.dumps(outcome_records(outcomes.by_offer), indent=2))
        return
    for line in outcome_lines(outcomes):
        click.echo(line)


@click.command("evaluate")
@click.option("--cutoff", default=None, metavar="DATE",
              help="Train before this day, test after it (default: evaluate.cutoff in the "
                   "config, else 80% of the way through the data).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_context
def evaluate_command(context: Context, cutoff: str | None, as_json: bool) -> None:
    """Recommendation quality on a time split: Segmint vs popularity and implicit's ALS and
    BM25 item-kNN, trained on the same lines."""
    from engine.evaluate import default_cutoff, evaluate
    from engine.store.customers import load_customers
    from engine.store.lines_read import load_lines

    settings = context.settings
    chosen = parse_date(cutoff, "--cutoff") or settings.evaluate.cutoff
    db = context.engine()
    lines = load_lines(engine=db)
    if lines.empty:
        raise SegmintError("no transaction lines in the database; run `segmint ingest PATH` first")
    if chosen is None:
        chosen = default_cutoff(lines)
    result = evaluate(lines, load_customers(engine=db), settings, chosen, progress=True)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(f"cutoff {result.cutoff}: {result.n_customers} customers evaluated "
               f"({result.n_train_customers} in the training run; the others bought nothing new "
               f"after the cutoff)")
    click.echo(result.table())
    versus = result.versus_table()
    if versus:
        click.echo("")
        click.echo(versus)
