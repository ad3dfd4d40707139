"""Holdouts in offer passes, against the fake Twilio: a holdout customer's number never reaches
it, groups hold across passes, restarts and concurrent passes, dry runs assign them too, and
bad settings or an unknown offer are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Person, live_settings, people, publish_run, settings_for, write_config
from fake_twilio import FakeTwilio
from test_offer_cli import cli_env, summary_count, two_concurrent_passes

from engine.outcomes import HOLDOUT, TREATMENT, assign_group
from engine.settings import Settings, load_settings
from notifications.offers import reconcile_grace, send_offers
from tests.conftest import run_segmint
from tests.notifications import ledger
from tests.notifications.crash_send import CRASH_EXIT_STATUS

SHARE = "holdout_share = 0.3\n"
SALT = "segmint-holdout"  # config.toml's default


def split(persons: list[Person], offer: str = "vip-thanks",
          share: float = 0.3) -> tuple[set[str], set[str]]:
    """(treatment phones, holdout phones) as the pass must draw them."""
    groups: dict[str, set[str]] = {TREATMENT: set(), HOLDOUT: set()}
    for person in persons:
        assert person.phone is not None
        groups[assign_group(person.customer_id, offer, salt=SALT,
                            holdout_share=share)].add(person.phone)
    return groups[TREATMENT], groups[HOLDOUT]


def phones_twilio_saw(fake: FakeTwilio) -> set[str]:
    """Every customer number anywhere in a request the fake received (creates, lists,
    anything; the sender's own From number left out)."""
    return {value for request in fake.requests
            for key, value in (*request.form.items(), *request.query.items())
            if value.startswith("+") and key != "From"}


def test_holdout_customers_are_recorded_never_messaged_and_keep_their_group(
        tmp_path: Path, db, db_url: str, fake_twilio: FakeTwilio) -> None:
    persons = people(60)
    treated, held = split(persons)
    assert 8 <= len(held) <= 30  # the draw really splits this population
    publish_run(db, persons)
    live = live_settings(tmp_path, db_url, fake_twilio, SHARE)
    first = send_offers(db, live)
    assert (first.sent, first.holdout) == (len(treated), len(held))
    assert not phones_twilio_saw(fake_twilio) & held
    assert {request.form["To"] for request in fake_twilio.creates()} == treated
    rows = ledger.all_messages(db)
    by_phone = {row.phone: row for row in rows}
    assert {phone for phone, row in by_phone.items() if row.status == "holdout"} == held
    assert all(by_phone[phone].assigned_group == HOLDOUT for phone in held)
    assert all(by_phone[phone].assigned_group == TREATMENT for phone in treated)
    assert {row.pass_id for row in rows} == {first.pass_id}

    # The next pass, a day later (a restart): nobody is messaged again, nobody changes group.
    again = send_offers(db, live, now=datetime.now(UTC) + timedelta(days=1))
    assert (again.sent, again.holdout) == (0, 0)
    assert (again.skipped["holdout"], again.skipped["already_sent"]) == (len(held), len(treated))
    assert len(fake_twilio.creates()) == len(treated)
    assert {(row.phone, row.status) for row in ledger.all_messages(db)} == {
        (row.phone, row.status) for row in rows}


def test_a_holdout_does_not_count_against_the_frequency_cap(tmp_path: Path, db, db_url: str,
                                                            fake_twilio: FakeTwilio) -> None:
    config = write_config(tmp_path, SHARE)
    with config.open("a") as handle:  # two offers to the same class, one message a week each
        for offer in ("spring", "summer"):
            handle.write(f'\n[[notifications.templates]]\noffer_id = "{offer}"\n'
                         f'target_classes = ["High value"]\nbody = "Hi {{first_name}}: {offer}"\n')
    live = load_settings(config, environ={"SEGMINT_DATABASE_URL": db_url, **fake_twilio.env()})
    persons = people(40)
    publish_run(db, persons)
    summary = send_offers(db, live)
    _, held_spring = split(persons, "spring")
    treated_summer, _ = split(persons, "summer")
    # Held out of spring, they are free for summer (when summer's draw treats them); treated
    # for spring, they are capped for summer.
    treated_spring = {p.phone for p in persons} - held_spring
    summer = {request.form["To"] for request in fake_twilio.creates()
              if "summer" in request.form["Body"]}
    assert summer == held_spring & treated_summer
    assert summary.skipped["frequency_cap"] == len(treated_spring)
    assert phones_twilio_saw(fake_twilio) == treated_spring | summer


def test_dry_runs_assign_the_same_groups_and_print_the_mde(tmp_path: Path, db,
                                                           db_url: str) -> None:
    persons = people(50)
    treated, held = split(persons)
    publish_run(db, persons)
    config = write_config(tmp_path, SHARE)
    result = run_segmint("--config", str(config), "send-offers", cwd=tmp_path,
                         env=cli_env(db_url))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (summary_count(out, "dry-run"), summary_count(out, "holdout")) == (
        len(treated), len(held))
    assert (f"measure vip-thanks: treatment {len(treated)}, holdout {len(held)} (share 30%): "
            "smallest detectable uplift") in out
    rows = ledger.all_messages(db)
    assert {row.status for row in rows} == {"dry_run"}
    assert all(row.offer_key.startswith("dry-run:") for row in rows)
    assert {row.phone for row in rows if row.assigned_group == HOLDOUT} == held
    masked_held = {f"+44******{phone[-4:]}" for phone in held}
    assert not any(line.split()[0] in masked_held for line in out.splitlines()
                   if line.startswith("  +44"))  # previews only for the treatment group


def test_a_restart_after_a_crash_never_reaches_a_holdout_number(
        tmp_path: Path, db, db_url: str, fake_twilio: FakeTwilio) -> None:
    persons = people(30)
    treated, held = split(persons)
    publish_run(db, persons)
    config = write_config(tmp_path, SHARE)
    crashed = subprocess.run(  # tests/notifications/crash_send.py kills it after one send
        [sys.executable, str(Path(__file__).with_name("crash_send.py")), "after_send",
         "--config", str(config), "send-offers"], cwd=tmp_path,
        env={**os.environ, **cli_env(db_url, fake_twilio)}, capture_output=True, text=True,
        timeout=300)
    assert crashed.returncode == CRASH_EXIT_STATUS, crashed.stderr
    live = live_settings(tmp_path, db_url, fake_twilio, SHARE)
    later = send_offers(db, live, now=datetime.now(UTC) + reconcile_grace(live) + timedelta(1))
    assert later.reconciled == 1
    assert Counter(request.form["To"] for request in fake_twilio.creates()) == {
        phone: 1 for phone in treated}
    assert not phones_twilio_saw(fake_twilio) & held
    assert Counter(row.status for row in ledger.all_messages(db))["holdout"] == len(held)


def test_two_concurrent_passes_keep_the_groups_and_send_once(tmp_path: Path, db, db_url: str,
                                                             fake_twilio: FakeTwilio) -> None:
    config = write_config(tmp_path, SHARE + "rate_per_second = 25.0\n")
    persons = people(40)
    treated, held = split(persons)
    publish_run(db, persons)
    outputs = two_concurrent_passes(tmp_path, config, cli_env(db_url, fake_twilio))
    assert sum(summary_count(out, "sent") for out in outputs) == len(treated)
    assert sum(summary_count(out, "holdout") for out in outputs) == len(held)
    assert Counter(request.form["To"] for request in fake_twilio.creates()) == {
        phone: 1 for phone in treated}
    assert not phones_twilio_saw(fake_twilio) & held
    rows = ledger.all_messages(db)
    assert len(rows) == len(persons)
    assert {row.phone for row in rows if row.status == "holdout"} == held


@pytest.mark.parametrize(("extra", "key"), [
    ("[notifications]\nholdout_share = 0.7\n", "notifications.holdout_share"),
    ("[notifications]\nholdout_share = -0.1\n", "notifications.holdout_share"),
    ("[outcomes]\nattribution_days = 0\n", "outcomes.attribution_days"),
    ("[outcomes]\nattribution_days = 1000\n", "outcomes.attribution_days"),
])
@pytest.mark.parametrize("command", [("send-offers",), ("outcomes",)])
def test_out_of_range_settings_are_one_line(tmp_path: Path, db_url: str, extra: str, key: str,
                                            command: tuple[str, ...]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(extra)
    result = run_segmint("--config", str(config), *command, cwd=tmp_path,
                         env=cli_env(db_url))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and key in errors[0] and "Traceback" not in result.stderr


def test_an_unknown_offer_is_one_line(tmp_path: Path, db, db_url: str,
                                      settings: Settings) -> None:
    publish_run(db, people(3))
    send_offers(db, settings_for(tmp_path, db_url, {}, SHARE))  # a dry run: no real rows
    result = run_segmint("outcomes", "--offer", "vip-thanks", cwd=tmp_path,
                         env=cli_env(db_url))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: no offer 'vip-thanks' in the ledger (offers: none yet)")
