"""send_offers against the fake Twilio server, through the real twilio client (SQLite and PG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Person, leave_stale_claim, live_settings, people, publish_run, settings_for
from fake_twilio import FakeTwilio

from engine.ingest import ingest_file
from engine.models import Customer
from engine.settings import Settings
from engine.store import customers as customer_store
from engine.store import offers as store
from notifications.offers import send_offers
from notifications.sender import ProviderError
from tests.conftest import session_scope
from tests.notifications import ledger

PHONE = "+447400123401"


def only_message(db, customer_id: str = "C0001"):  # type: ignore[no-untyped-def]
    rows = ledger.messages_for_customer(db, customer_id=customer_id)
    assert len(rows) == 1, rows
    return rows[0]


def test_success_records_sid_and_status(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    run_id = publish_run(db, people(1))
    summary = send_offers(db, live)
    assert (summary.sent, summary.failed, summary.eligible, summary.run_id) == (1, 0, 1, run_id)
    [request] = fake_twilio.creates()
    assert request.form["To"] == PHONE and request.form["From"] == "+15005550006"
    assert "Hi Ann" in request.form["Body"] and "WHITE HANGING HEART" in request.form["Body"]
    row = only_message(db)
    assert row.status == "queued" and row.provider_sid == fake_twilio.created()[0]["sid"]
    assert row.offer_key == "vip-thanks:C0001" and row.attempts == 1 and row.run_id == run_id


def test_second_pass_sends_nothing_again(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(3))
    assert send_offers(db, live).sent == 3
    again = send_offers(db, live)
    assert again.sent == 0 and again.skipped["already_sent"] == 3
    assert len(fake_twilio.creates()) == 3
    reasons = {skip.reason for skip in ledger.skips_for_pass(db, pass_id=again.pass_id)}
    assert reasons == {"already_sent"}


@pytest.mark.parametrize("first", ["429", "500"])
def test_transient_error_then_success_is_retried(db, live: Settings, fake_twilio: FakeTwilio,
                                                 first: str) -> None:
    publish_run(db, people(1))
    fake_twilio.script(first, "success")
    summary = send_offers(db, live)
    assert summary.sent == 1 and summary.failed == 0
    assert len(fake_twilio.creates()) == 2 and len(fake_twilio.created()) == 1
    row = only_message(db)
    assert row.status == "queued" and row.attempts == 2


def test_a_server_error_that_created_the_message_is_not_retried_blindly(
        db, live: Settings, fake_twilio: FakeTwilio) -> None:
    """Before: Twilio created the message but answered 500, the send retried the create at once
    and the customer got the offer twice. Now the send asks Twilio first and records its message."""
    publish_run(db, people(1))
    fake_twilio.script("500_created", "success")
    summary = send_offers(db, live)
    assert (summary.sent, summary.failed, summary.deferred) == (1, 0, 0)
    [created] = fake_twilio.created(PHONE)
    assert len(fake_twilio.creates()) == 1
    row = only_message(db)
    assert (row.status, row.provider_sid) == ("queued", created["sid"])


def test_a_rate_limit_outage_frees_the_offer_for_a_later_pass(db, live: Settings,
                                                             fake_twilio: FakeTwilio) -> None:
    """Before: the row became 'failed', kept the unique key, and every later pass skipped the
    customer as already_sent. 429s create nothing, so the claim is released."""
    publish_run(db, people(1))
    fake_twilio.script(*["429"] * 10)
    first = send_offers(db, live)
    assert (first.deferred, first.failed, first.sent) == (1, 0, 0)
    assert len(fake_twilio.creates()) == live.notifications.max_retries + 1
    assert ledger.all_messages(db) == []
    fake_twilio._script.clear()  # Twilio is healthy again
    second = send_offers(db, live, now=datetime.now(UTC) + timedelta(hours=1))
    assert (second.sent, second.skipped["already_sent"]) == (1, 0)
    assert len(fake_twilio.created(PHONE)) == 1
    assert only_message(db).status == "queued"


def test_a_server_error_outage_is_checked_with_twilio_then_retried(db, live: Settings,
                                                                  fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(1))
    fake_twilio.script(*["500"] * (live.notifications.max_retries + 1))
    first = send_offers(db, live)
    assert (first.deferred, first.failed, first.unknown) == (1, 0, 0)
    # asked Twilio before each retry and once more at the end: nothing there
    assert len(fake_twilio.lists()) == live.notifications.max_retries + 1
    row = only_message(db)
    assert (row.status, row.error_code, row.provider_sid) == ("retry", "20500", None)
    second = send_offers(db, live, now=datetime.now(UTC) + timedelta(hours=1))
    assert (second.sent, second.reconciled) == (1, 0)
    assert len(fake_twilio.lists()) == live.notifications.max_retries + 2  # asked again first
    assert len(fake_twilio.created(PHONE)) == 1
    row = only_message(db)
    assert row.status == "queued" and row.provider_sid == fake_twilio.created()[0]["sid"]
    assert send_offers(db, live, now=datetime.now(UTC) + timedelta(days=1)).sent == 0


def test_a_server_error_outage_never_sends_twice(db, live: Settings,
                                                 fake_twilio: FakeTwilio) -> None:
    """A 5xx whose message Twilio did create is found at once; one that Twilio lists only
    later is found by the next pass, which then sends nothing."""
    publish_run(db, people(2))
    retries = live.notifications.max_retries
    fake_twilio.script("500_created", *["500"] * retries, to=PHONE)
    fake_twilio.script(*["500"] * (retries + 1), to="+447400123402")
    first = send_offers(db, live)
    assert (first.sent, first.deferred) == (1, 1)
    assert only_message(db).provider_sid == fake_twilio.created(PHONE)[0]["sid"]
    [waiting] = ledger.messages_for_customer(db, customer_id="C0002")
    assert waiting.status == "retry"
    late = fake_twilio._new_message({"To": waiting.phone, "Body": waiting.body})
    second = send_offers(db, live, now=datetime.now(UTC) + timedelta(hours=1))
    assert (second.sent, second.reconciled) == (0, 1)
    [found] = ledger.messages_for_customer(db, customer_id="C0002")
    assert (found.status, found.provider_sid) == ("queued", late["sid"])
    assert len(fake_twilio.created()) == 2
    # PHONE: one create (its 500 was found before any retry); C0002: every attempt
    assert len(fake_twilio.creates(PHONE)) == 1
    assert len(fake_twilio.creates()) == 1 + (retries + 1)


def test_a_server_error_then_an_outage_is_never_sent_twice(db, live: Settings,
                                                          fake_twilio: FakeTwilio) -> None:
    """Before: Twilio answered 500 having created the message, the retry found the API
    unreachable, the claim was released, and the next pass sent the offer a second time. Now the
    row stays 'retry' and the next pass finds Twilio's message instead of sending again."""
    publish_run(db, people(1))
    fake_twilio.script("500_created_down")
    with pytest.raises(ProviderError, match="unreachable") as raised:
        send_offers(db, live)
    row = only_message(db)
    assert (row.status, row.provider_sid) == ("retry", None)
    assert raised.value.maybe_created
    fake_twilio.restart()  # Twilio is back
    second = send_offers(db, live, now=datetime.now(UTC) + timedelta(hours=1))
    assert (second.sent, second.reconciled) == (0, 1)
    [created] = fake_twilio.created(PHONE)
    row = only_message(db)
    assert (row.status, row.provider_sid) == ("queued", created["sid"])
    assert len(fake_twilio.created()) == 1


def test_a_retry_row_of_a_customer_who_opted_out_is_still_reconciled(
        db, live: Settings, fake_twilio: FakeTwilio) -> None:
    """Before: a 'retry' row whose customer then opted out was never claimed nor reconciled: it
    stayed 'retry' for ever, the early 'delivered' callback was never applied and the frequency
    cap ignored a message that had reached the customer. Now every pass reconciles it first."""
    publish_run(db, people(1))
    fake_twilio.script(*["500"] * (live.notifications.max_retries + 1))
    assert send_offers(db, live).deferred == 1
    [waiting] = ledger.all_messages(db)
    assert waiting.status == "retry"
    late = fake_twilio._new_message({"To": waiting.phone, "Body": waiting.body})  # listed late
    assert store.record_status_callback(engine=db, provider_sid=late["sid"], status="delivered",
                                        error_code=None, now=datetime.now(UTC)) == "kept"
    customer_store.set_opt_out(engine=db, phone=PHONE, opted_out=True, source="STOP",
                               now=datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(hours=1)
    second = send_offers(db, live, now=later)
    assert (second.sent, second.reconciled) == (0, 1)
    row = only_message(db)
    assert (row.status, row.provider_sid) == ("delivered", late["sid"])
    assert ledger.early_statuses(db) == []
    assert "C0001" in store.recently_messaged(engine=db, since=later - timedelta(days=1))
    assert len(fake_twilio.created()) == 1


@pytest.mark.parametrize("gone", ["opted_out", "left_the_class"])
def test_a_retry_row_that_can_no_longer_be_sent_ends_failed(
        db, live: Settings, fake_twilio: FakeTwilio, gone: str) -> None:
    """Before: not found at Twilio and no longer sendable, the row stayed 'retry' for ever.
    Now the next pass asks Twilio, finds nothing, and records 'failed' with the reason."""
    publish_run(db, people(1))
    fake_twilio.script(*["500"] * (live.notifications.max_retries + 1))
    assert send_offers(db, live).deferred == 1
    if gone == "opted_out":
        customer_store.set_opt_out(engine=db, phone=PHONE, opted_out=True, source="STOP",
                               now=datetime.now(UTC))
    else:
        publish_run(db, people(1, customer_class="No offer for this class"))
    second = send_offers(db, live, now=datetime.now(UTC) + timedelta(hours=1))
    assert (second.sent, second.failed, second.reconciled) == (0, 1, 0)
    row = only_message(db)
    assert (row.status, row.provider_sid) == ("failed", None)
    expected = "opted_out" if gone == "opted_out" else "no longer a target"
    assert row.error_text is not None and expected in row.error_text
    assert fake_twilio.created() == []
    assert send_offers(db, live, now=datetime.now(UTC) + timedelta(days=1)).failed == 0


def test_21610_records_opt_out_without_retry(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(1))
    fake_twilio.script("21610")
    summary = send_offers(db, live)
    assert summary.failed == 1
    assert len(fake_twilio.creates()) == 1
    row = only_message(db)
    assert (row.status, row.error_code) == ("failed", "21610")
    state = ledger.opt_out_state(db, phone=PHONE)
    assert state is not None and state.opted_out and state.source == "error 21610"
    # a new offer for the same customer in a later run is skipped as opted out
    publish_run(db, [Person("C0001", phone=PHONE, customer_class="New")])
    later = send_offers(db, live, now=datetime.now(UTC) + timedelta(days=30))
    assert later.skipped["opted_out"] == 1 and len(fake_twilio.creates()) == 1


@pytest.mark.parametrize("code", ["21211", "21614"])
def test_invalid_number_marks_customer(db, live: Settings, fake_twilio: FakeTwilio,
                                       code: str) -> None:
    publish_run(db, people(1))
    fake_twilio.script(code)
    assert send_offers(db, live).failed == 1
    assert len(fake_twilio.creates()) == 1
    assert only_message(db).error_code == code
    with session_scope(db) as session:
        customer = session.get(Customer, "C0001")
        assert customer is not None and customer.phone_status == "invalid"
    publish_run(db, [Person("C0001", phone=PHONE, customer_class="New")])
    later = send_offers(db, live, now=datetime.now(UTC) + timedelta(days=30))
    assert later.skipped["invalid_number"] == 1


def test_timeout_is_reconciled_not_retried(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    """Policy: a timed-out create may have been accepted, so it is never retried; the pass asks
    Twilio at once and records the message it finds."""
    publish_run(db, people(1))
    fake_twilio.script("timeout")
    summary = send_offers(db, live)
    assert summary.sent == 1 and summary.unknown == 0
    assert len(fake_twilio.creates()) == 1
    row = only_message(db)
    assert row.status == "queued" and row.provider_sid == fake_twilio.created()[0]["sid"]


def test_timeout_without_a_message_is_unknown(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(1))
    fake_twilio.script("timeout_lost")
    summary = send_offers(db, live)
    assert summary.unknown == 1 and summary.sent == 0
    assert len(fake_twilio.creates()) == 1
    row = only_message(db)
    assert row.status == "unknown" and row.provider_sid is None
    # later passes never resend it blindly
    assert send_offers(db, live, now=datetime.now(UTC) + timedelta(hours=1)).sent == 0
    assert len(fake_twilio.creates()) == 1


def test_bad_credentials_stop_the_pass_and_release_the_claim(tmp_path: Path, db, db_url: str,
                                                             fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(2))
    wrong = settings_for(tmp_path, db_url, fake_twilio.env(TWILIO_AUTH_TOKEN="not-the-token"))
    with pytest.raises(ProviderError, match="refused the credentials") as raised:
        send_offers(db, wrong)
    assert "not-the-token" not in str(raised.value)
    assert ledger.all_messages(db) == []  # nothing was sent, so nothing blocks the next pass
    assert send_offers(db, live_settings(tmp_path, db_url, fake_twilio)).sent == 2


def test_unreachable_provider_is_one_line(tmp_path: Path, db, db_url: str) -> None:
    publish_run(db, people(1))
    closed = FakeTwilio().start()
    env = closed.env()
    closed.stop()  # nothing listens on that port any more
    with pytest.raises(ProviderError, match="unreachable") as raised:
        send_offers(db, settings_for(tmp_path, db_url, env))
    assert "\n" not in str(raised.value) and env["TWILIO_AUTH_TOKEN"] not in str(raised.value)
    assert ledger.all_messages(db) == []


def test_dry_run_records_and_does_not_block_a_real_send(db, live: Settings,
                                                        fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(2))
    dry = send_offers(db, live, dry_run=True)
    assert (dry.dry_run, dry.dry_runs, dry.sent) == (True, 2, 0)
    assert fake_twilio.requests == []
    assert [phone for phone, _body in dry.previews] == ["+44******3401", "+44******3402"]
    assert {row.status for row in ledger.all_messages(db)} == {"dry_run"}
    # a repeated dry run re-renders instead of piling up rows
    send_offers(db, live, dry_run=True)
    assert len(ledger.all_messages(db)) == 2
    real = send_offers(db, live)
    assert real.sent == 2 and len(fake_twilio.created()) == 2


def test_without_credentials_the_default_is_a_dry_run(db, settings: Settings) -> None:
    publish_run(db, people(1))
    # At midday: the default settings keep quiet hours, and at night the customer is skipped.
    summary = send_offers(db, settings, now=datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    assert summary.dry_run and summary.dry_runs == 1
    assert only_message(db).offer_key == "dry-run:vip-thanks:C0001"


def test_messaging_service_sid_is_used_when_set(tmp_path: Path, db, db_url: str,
                                                fake_twilio: FakeTwilio) -> None:
    env = fake_twilio.env(TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32)
    del env["TWILIO_FROM_NUMBER"]
    publish_run(db, people(1))
    assert send_offers(db, settings_for(tmp_path, db_url, env)).sent == 1
    [request] = fake_twilio.creates()
    assert request.form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in request.form


def test_reconciling_retries_a_transient_list_error(db, live: Settings,
                                                    fake_twilio: FakeTwilio) -> None:
    """Before: the list call's 429 escaped as twilio's base TwilioException and the pass sent
    nothing; now it is retried with the send's backoff."""
    publish_run(db, people(5))
    leave_stale_claim(db)
    fake_twilio.script_list("429", "500")
    summary = send_offers(db, live)
    assert (summary.unknown, summary.sent) == (1, 4)
    assert len(fake_twilio.lists()) == 3
    assert len(fake_twilio.created()) == 4 and not fake_twilio.created(PHONE)


def test_a_list_outage_and_refused_credentials_are_one_line(tmp_path: Path, db, db_url: str,
                                                            fake_twilio: FakeTwilio) -> None:
    publish_run(db, people(2))
    leave_stale_claim(db)
    fake_twilio.script_list(*["500"] * 10)
    live = live_settings(tmp_path, db_url, fake_twilio)
    with pytest.raises(ProviderError, match="could not list messages: HTTP 500") as raised:
        send_offers(db, live)
    assert "\n" not in str(raised.value)
    assert len(fake_twilio.lists()) == live.notifications.max_retries + 1
    wrong = settings_for(tmp_path, db_url, fake_twilio.env(TWILIO_AUTH_TOKEN="not-the-token"))
    with pytest.raises(ProviderError, match="refused the credentials"):
        send_offers(db, wrong)
    assert fake_twilio.creates() == []
    assert [row.status for row in ledger.all_messages(db)] == ["sending"]


def test_a_path_in_the_base_url_is_kept(tmp_path: Path, db, db_url: str) -> None:
    """Before: SEGMINT_TWILIO_BASE_URL=http://host/twilio-proxy sent to http://host/2010-04-01/..."""
    proxied = FakeTwilio(prefix="/twilio-proxy").start()
    try:
        env = proxied.env(SEGMINT_TWILIO_BASE_URL=proxied.base_url + "/twilio-proxy/")
        publish_run(db, people(1))
        assert send_offers(db, settings_for(tmp_path, db_url, env)).sent == 1
        [request] = proxied.creates()
        assert request.path.startswith("/twilio-proxy/2010-04-01/Accounts/")
    finally:
        proxied.stop()


def test_a_stop_during_the_pass_is_honoured_by_the_next_claim(db, live: Settings,
                                                             fake_twilio: FakeTwilio) -> None:
    """Before: opt-outs were read once when the pass started, so C0002 was texted after STOP."""
    publish_run(db, people(3))

    def stop_from_c0002(form: dict[str, str]) -> None:
        if form["To"] == PHONE:  # while the pass is sending to C0001
            customer_store.set_opt_out(engine=db, phone="+447400123402", opted_out=True,
                                       source="STOP", now=datetime.now(UTC))

    fake_twilio.on_create = stop_from_c0002
    summary = send_offers(db, live)
    assert (summary.sent, summary.eligible, summary.skipped["opted_out"]) == (2, 2, 1)
    assert not fake_twilio.creates("+447400123402")
    assert ledger.messages_for_customer(db, customer_id="C0002") == []
    reasons = {(s.customer_id, s.reason)
               for s in ledger.skips_for_pass(db, pass_id=summary.pass_id)}
    assert reasons == {("C0002", "opted_out")}


def test_a_claim_is_stamped_when_it_is_made(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    """Before: claims carried the pass's start time, so a pass starting a few minutes into a
    long pass took its in-flight send for an abandoned one and marked it 'unknown'."""
    publish_run(db, people(3))
    start = datetime.now(UTC)
    late = timedelta(minutes=3)  # the long pass reaches C0003 three minutes after it started
    other: list[object] = []

    def clock() -> datetime:
        return start + (late if len(fake_twilio.created()) >= 2 else timedelta(0))

    def second_pass_starts(form: dict[str, str]) -> None:
        if form["To"] == "+447400123403":
            other.append(send_offers(db, live, now=start + late + timedelta(seconds=1)))

    fake_twilio.on_create = second_pass_starts
    first = send_offers(db, live, clock=clock)
    [second] = other
    assert second.unknown == 0 and second.skipped["already_sent"] == 3  # type: ignore[attr-defined]
    assert first.sent == 3 and len(fake_twilio.created()) == 3
    [row] = ledger.messages_for_customer(db, customer_id="C0003")
    assert row.created_at == start + late and row.status == "queued"


def test_reloading_customers_keeps_a_number_twilio_rejected_invalid(tmp_path: Path, db,
                                                                   live: Settings,
                                                                   fake_twilio: FakeTwilio) -> None:
    """Before: the next customers file reset phone_status to 'valid' and the number Twilio had
    rejected (21211) was texted again. A changed number is judged afresh."""
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

    def load(name: str, invoice: str, customers: str) -> None:
        lines = tmp_path / f"{name}.csv"
        lines.write_text(header + f"{invoice},85123A,HEART,6,2011-12-01 08:26,2.55,C0001,"
                         "United Kingdom\n")
        people_file = tmp_path / f"{name}-customers.csv"
        people_file.write_text("customer_id,first_name,phone,sms_consent\n" + customers)
        ingest_file(db, live, lines, customers=people_file)

    load("day1", "536365", f"C0001,Ann,{PHONE},yes\nC0002,Bo,+447400123402,yes\n")
    publish_run(db, people(2))
    fake_twilio.script("21211", to=PHONE)
    fake_twilio.script("21614", to="+447400123402")
    assert send_offers(db, live).failed == 2
    load("day2", "536366", f"C0001,Ann,{PHONE},yes\nC0002,Bo,+447400123499,yes\n")
    with session_scope(db) as session:
        statuses = {c.customer_id: (c.phone, c.phone_status) for c in (
            session.get(Customer, "C0001"), session.get(Customer, "C0002")) if c is not None}
    assert statuses == {"C0001": (PHONE, "invalid"), "C0002": ("+447400123499", "valid")}
    publish_run(db, [Person("C0001", customer_class="New"), Person("C0002", customer_class="New")])
    later = send_offers(db, live, now=datetime.now(UTC) + timedelta(days=30))
    assert (later.sent, later.skipped["invalid_number"]) == (1, 1)
    assert len(fake_twilio.creates(PHONE)) == 1
    assert len(fake_twilio.created("+447400123499")) == 1


def test_a_missing_sender_is_named_in_the_dry_run_note(tmp_path: Path, db, db_url: str,
                                                       fake_twilio: FakeTwilio) -> None:
    """Before: SID and token set without a from-number said 'credentials are not set'."""
    env = fake_twilio.env()
    del env["TWILIO_FROM_NUMBER"]
    publish_run(db, people(1))
    summary = send_offers(db, settings_for(tmp_path, db_url, env))
    assert summary.dry_run and summary.note is not None
    assert "TWILIO_FROM_NUMBER" in summary.note and "credentials" not in summary.note
