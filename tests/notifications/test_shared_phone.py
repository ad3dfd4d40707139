"""Issue 19 (smaller list): two customers sharing one phone number got the same offer twice.
At most one message per number per offer, within a pass and across passes and runs."""

from __future__ import annotations

from conftest import Person, publish_run
from fake_twilio import FakeTwilio
from ledger import skips_for_pass

from engine.settings import Settings
from notifications.offers import send_offers

SHARED = "+447400123401"
HOUSEHOLD = [Person("C0001", phone=SHARED, first_name="Ann"),
             Person("C0002", phone=SHARED, first_name="Bob"),
             Person("C0003", phone="+447400123403", first_name="Cat")]


def test_one_message_per_number_per_offer(db, live: Settings, fake_twilio: FakeTwilio) -> None:
    publish_run(db, HOUSEHOLD)
    summary = send_offers(db, live)

    assert len(fake_twilio.created(to=SHARED)) == 1
    assert len(fake_twilio.created()) == 2 and summary.sent == 2
    assert summary.skipped["shared_phone"] == 1
    skipped = skips_for_pass(db, pass_id=summary.pass_id)
    assert [(skip.customer_id, skip.reason) for skip in skipped] == [("C0002", "shared_phone")]


def test_a_later_pass_and_a_later_run_do_not_text_the_number_again(
        db, live: Settings, fake_twilio: FakeTwilio) -> None:
    publish_run(db, HOUSEHOLD[:1])
    assert send_offers(db, live).sent == 1
    # A new run in which the household's other member is a target for the same offer.
    publish_run(db, HOUSEHOLD)
    later = send_offers(db, live)
    assert len(fake_twilio.created(to=SHARED)) == 1
    assert later.sent == 1 and later.skipped["shared_phone"] == 1  # only C0003 is new


def test_a_dry_run_previews_one_message_per_number(db, tmp_path, db_url: str) -> None:
    from conftest import settings_for

    settings = settings_for(tmp_path, db_url, {"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""})
    publish_run(db, HOUSEHOLD)
    summary = send_offers(db, settings, dry_run=True)
    assert summary.dry_runs == 2 and len(summary.previews) == 2
    assert summary.skipped["shared_phone"] == 1
