"""`segmint send-offers` in real processes: crashes, concurrent senders, dry run, errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import leave_stale_claim, live_settings, people, publish_run, write_config
from fake_twilio import FakeTwilio

from notifications.offers import reconcile_grace, send_offers
from tests.conftest import REPO, run_segmint
from tests.notifications import ledger
from tests.notifications.crash_send import CRASH_EXIT_STATUS

CRASH_SEND = REPO / "tests" / "notifications" / "crash_send.py"


def cli_env(db_url: str, fake: FakeTwilio | None = None, **extra: str) -> dict[str, str]:
    env = {"SEGMINT_DATABASE_URL": db_url, **(fake.env() if fake else {}), **extra}
    if fake is None:  # make sure nothing from the outer environment turns this into a live run
        env.update({name: "" for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
                                          "TWILIO_FROM_NUMBER", "TWILIO_MESSAGING_SERVICE_SID")})
    return env


def crash_a_pass(point: str, tmp_path: Path, db, db_url: str,  # type: ignore[no-untyped-def]
                 fake_twilio: FakeTwilio) -> None:
    """Three customers published, then `segmint send-offers` in a child process that dies at
    `point` (tests/notifications/crash_send.py patches the send path; production has no such
    hook)."""
    config = write_config(tmp_path)
    publish_run(db, people(3))
    result = subprocess.run(
        [sys.executable, str(CRASH_SEND), point, "--config", str(config), "send-offers"],
        cwd=tmp_path, env={**os.environ, **cli_env(db_url, fake_twilio)}, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == CRASH_EXIT_STATUS, result.stderr


def summary_count(stdout: str, label: str) -> int:
    match = re.search(rf"^{label}:\s+(\d+)", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1))


def two_concurrent_passes(folder: Path, config: Path, env: dict[str, str]) -> list[str]:
    """Start two `send-offers` processes at once; both must succeed. Their standard outputs."""
    command = [sys.executable, "-m", "segmint", "--config", str(config), "send-offers"]
    processes = [subprocess.Popen(command, cwd=folder, env={**os.environ, **env},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    return [out for out, _err in outputs]


def test_dry_run_prints_masked_messages_and_a_summary(tmp_path: Path, db, db_url: str) -> None:
    config = write_config(tmp_path)
    publish_run(db, people(2))
    result = run_segmint("--config", str(config), "send-offers", cwd=tmp_path,
                         env=cli_env(db_url))
    assert result.returncode == 0, result.stderr
    assert "+44******3401  Hi Ann" in result.stdout and "+447400123401" not in result.stdout
    assert "(dry run)" in result.stdout and summary_count(result.stdout, "dry-run") == 2
    assert summary_count(result.stdout, "sent") == 0
    assert {row.status for row in ledger.all_messages(db)} == {"dry_run"}


def test_explicit_dry_run_with_credentials_calls_nobody(tmp_path: Path, db, db_url: str,
                                                        fake_twilio: FakeTwilio) -> None:
    config = write_config(tmp_path)
    publish_run(db, people(1))
    result = run_segmint("--config", str(config), "send-offers", "--dry-run", cwd=tmp_path,
                         env=cli_env(db_url, fake_twilio))
    assert result.returncode == 0, result.stderr
    assert summary_count(result.stdout, "dry-run") == 1 and fake_twilio.requests == []


def test_live_pass_summary_and_skip_reasons(tmp_path: Path, db, db_url: str,
                                            fake_twilio: FakeTwilio) -> None:
    config = write_config(tmp_path)
    publish_run(db, people(2) + people(1, start=3, consent=False))
    fake_twilio.script("21610", to="+447400123402")
    result = run_segmint("--config", str(config), "send-offers", cwd=tmp_path,
                         env=cli_env(db_url, fake_twilio))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (summary_count(out, "eligible"), summary_count(out, "sent"),
            summary_count(out, "failed")) == (2, 1, 1)
    assert "no_consent 1" in out
    assert fake_twilio.auth_token not in result.stdout + result.stderr
    assert "+447400123402" not in result.stderr  # logs mask numbers


@pytest.mark.parametrize("problem", ["unreachable", "credentials"])
def test_provider_problems_are_one_line_errors(tmp_path: Path, db, db_url: str,
                                               fake_twilio: FakeTwilio, problem: str) -> None:
    config = write_config(tmp_path)
    publish_run(db, people(1))
    if problem == "unreachable":
        closed = FakeTwilio().start()
        env = cli_env(db_url, closed)
        closed.stop()
    else:
        env = cli_env(db_url, fake_twilio, TWILIO_AUTH_TOKEN="wrong-token")
    result = run_segmint("--config", str(config), "send-offers", cwd=tmp_path, env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert ("unreachable" if problem == "unreachable" else "refused the credentials") in lines[0]
    assert "wrong-token" not in result.stderr
    assert ledger.all_messages(db) == []


def test_crash_after_the_claim_is_reconciled_not_resent(tmp_path: Path, db, db_url: str,
                                                        fake_twilio: FakeTwilio) -> None:
    crash_a_pass("after_claim", tmp_path, db, db_url, fake_twilio)
    assert fake_twilio.creates() == []
    [crashed] = ledger.all_messages(db)
    assert crashed.status == "sending"

    live = live_settings(tmp_path, db_url, fake_twilio)
    # At once: the claim may still be in flight elsewhere, so it is left alone; the rest go out.
    soon = send_offers(db, live)
    assert (soon.sent, soon.unknown, soon.skipped["already_sent"]) == (2, 0, 1)
    # Once older than any send can take: Twilio lists no such message -> 'unknown', not resent.
    later = send_offers(db, live, now=datetime.now(UTC) + reconcile_grace(live) + timedelta(1))
    assert (later.unknown, later.sent) == (1, 0)
    rows = {row.customer_id: row for row in ledger.all_messages(db)}
    assert rows[crashed.customer_id].status == "unknown"
    assert Counter(r.form["To"] for r in fake_twilio.creates()) == {
        "+447400123402": 1, "+447400123403": 1}
    assert send_offers(db, live, now=datetime.now(UTC) + timedelta(days=1)).sent == 0
    assert len(fake_twilio.creates()) == 2


def test_crash_after_the_send_finds_the_message_at_twilio(tmp_path: Path, db, db_url: str,
                                                          fake_twilio: FakeTwilio) -> None:
    crash_a_pass("after_send", tmp_path, db, db_url, fake_twilio)
    [sent] = fake_twilio.created()
    live = live_settings(tmp_path, db_url, fake_twilio)
    later = send_offers(db, live, now=datetime.now(UTC) + reconcile_grace(live) + timedelta(1))
    assert (later.reconciled, later.sent, later.unknown) == (1, 2, 0)
    rows = {row.phone: row for row in ledger.all_messages(db)}
    assert rows[sent["to"]].provider_sid == sent["sid"] and rows[sent["to"]].status == "queued"
    assert Counter(r.form["To"] for r in fake_twilio.creates()) == {
        "+447400123401": 1, "+447400123402": 1, "+447400123403": 1}


def test_two_concurrent_senders_send_each_message_once(tmp_path: Path, db, db_url: str,
                                                       fake_twilio: FakeTwilio) -> None:
    # A modest rate keeps both processes sending at the same time.
    config = write_config(tmp_path, "rate_per_second = 25.0\n")
    targets = people(40)
    publish_run(db, targets)
    outputs = two_concurrent_passes(tmp_path, config, cli_env(db_url, fake_twilio))
    sent = [summary_count(out, "sent") for out in outputs]
    assert sum(sent) == 40
    assert Counter(r.form["To"] for r in fake_twilio.creates()) == {
        person.phone: 1 for person in targets}
    assert len(fake_twilio.created()) == 40
    rows = ledger.all_messages(db)
    assert len(rows) == 40 and {row.status for row in rows} == {"queued"}
    lost = [int(m.group(1)) if (m := re.search(r"already_sent (\d+)", out)) else 0
            for out in outputs]
    print(f"concurrent senders: sent {sent}, lost the race on {lost}")


def test_a_list_outage_while_reconciling_is_a_one_line_error(tmp_path: Path, db, db_url: str,
                                                             fake_twilio: FakeTwilio) -> None:
    """Before: a traceback ending in twilio's 'Unable to fetch page'."""
    config = write_config(tmp_path)
    publish_run(db, people(2))
    leave_stale_claim(db)
    fake_twilio.script_list(*["429"] * 10)
    result = run_segmint("--config", str(config), "send-offers", cwd=tmp_path,
                         env=cli_env(db_url, fake_twilio))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "could not list messages: HTTP 429" in lines[0]
