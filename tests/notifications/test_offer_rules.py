"""Templates, segment counts and eligibility (pure functions), and the pass with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from conftest import Person, live_settings, people, publish_run
from fake_twilio import FakeTwilio
from hypothesis import given
from hypothesis import strategies as st

from engine.phones import mask_phone
from engine.settings import NotificationSettings, OfferTemplate
from notifications.eligibility import in_quiet_window, recipient_zones, to_e164
from notifications.offers import send_offers
from notifications.templates import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    TemplateError,
    check_template,
    count_segments,
    offer_code,
    render,
)
from tests.notifications import ledger


@pytest.mark.parametrize(("text", "encoding", "segments"), [
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1),  # extension characters take two septets
    ("€" * 81, "GSM-7", 2),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),  # 306 septets, but an escape pair never splits
    ("ł" * 70, "UCS-2", 1),
    ("ł" * 71, "UCS-2", 2),
    ("ł" * 134, "UCS-2", 2),
    ("ł" * 135, "UCS-2", 3),
    ("😀" * 35, "UCS-2", 1),  # two UTF-16 units each
    ("a" * 159 + "ł", "UCS-2", 3),  # one non-GSM character makes the whole text UCS-2
])
def test_segment_counts(text: str, encoding: str, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=700))
def test_gsm_segments_hold_their_septets(text: str) -> None:
    count = count_segments(text)
    assert count.encoding == "GSM-7"
    capacity = 160 if count.segments == 1 else 153 * count.segments
    assert count.units <= capacity
    assert count.segments == 1 or count.units > 160  # never more segments than needed to split


@given(st.text(max_size=400))
def test_every_text_gets_a_count_consistent_with_its_encoding(text: str) -> None:
    count = count_segments(text)
    per_single, per_part = (160, 153) if count.encoding == "GSM-7" else (70, 67)
    assert count.segments >= 1
    assert count.units <= (per_single if count.segments == 1 else per_part * count.segments)


def test_render_fills_placeholders_and_falls_back() -> None:
    settings = NotificationSettings()
    template = OfferTemplate(offer_id="o1", target_classes=["New"],
                             body="Hi {first_name}: {product}, code {offer_code}")
    full = render(template, customer_id="C1", first_name="Ann", product="MUG", settings=settings)
    assert full.body == f"Hi Ann: MUG, code {offer_code('o1', 'C1')}"
    bare = render(template, customer_id="C1", first_name=None, product=" ", settings=settings)
    assert bare.body.startswith("Hi there: our new arrivals, code ")
    assert offer_code("o1", "C1") == offer_code("o1", "C1") != offer_code("o2", "C1")
    assert len(offer_code("o1", "C1")) == 8


@pytest.mark.parametrize("body", ["Hi {name}", "{first_name.__class__}", "{product!r}",
                                  "{offer_code:>10}", "broken {"])
def test_bad_templates_are_refused_with_the_offer_named(body: str) -> None:
    with pytest.raises(TemplateError, match=r"notifications.templates\[o1\].body"):
        check_template(OfferTemplate(offer_id="o1", target_classes=["New"], body=body))


def test_phone_numbers() -> None:
    assert to_e164("07400 123401", "GB") == "+447400123401"
    assert to_e164("+1 202-555-0123", "GB") == "+12025550123"
    assert to_e164("12345", "GB") is None and to_e164("", "GB") is None
    assert to_e164("not a number", "GB") is None
    assert mask_phone("+447400123401") == "+44******3401"
    assert mask_phone("+12025550123") == "+1******0123"


def test_quiet_window() -> None:
    start, end = time(21), time(8)
    assert in_quiet_window(time(21), start, end) and in_quiet_window(time(7, 59), start, end)
    assert not in_quiet_window(time(8), start, end)
    assert not in_quiet_window(time(20, 59), start, end)
    assert in_quiet_window(time(13), time(12), time(14))
    assert not in_quiet_window(time(3), time(0), time(0))


def test_zones_prefer_the_customer_then_the_number_then_the_default() -> None:
    assert [z.key for z in recipient_zones("+12025550123", "Asia/Tokyo", "Europe/London")] == \
        ["Asia/Tokyo"]
    assert [z.key for z in recipient_zones("+12025550123", None, "Europe/London")] == \
        ["America/New_York"]
    assert [z.key for z in recipient_zones("+12025550123", "Not/AZone", "Europe/London")] == \
        ["America/New_York"]


QUIET = 'quiet_start = 21:00:00\nquiet_end = 08:00:00\n'


def test_quiet_hours_defer_in_the_recipients_local_time(tmp_path: Path, db, db_url: str,
                                                        fake_twilio: FakeTwilio) -> None:
    live = live_settings(tmp_path, db_url, fake_twilio, QUIET)
    london = Person("C0001", phone="+447400123401")
    new_york = Person("C0002", phone="+12025550123")
    tokyo = Person("C0003", phone="+447400123403", timezone="Asia/Tokyo")
    publish_run(db, [london, new_york, tokyo])
    # 22:30 in London (winter, UTC+0) = 17:30 in New York = 07:30 next day in Tokyo
    evening = datetime(2024, 1, 15, 22, 30, tzinfo=UTC)
    first = send_offers(db, live, now=evening)
    assert first.sent == 1 and first.skipped["quiet_hours"] == 2
    assert [r.form["To"] for r in fake_twilio.creates()] == ["+12025550123"]
    assert {row.customer_id for row in ledger.all_messages(db)} == {"C0002"}  # no row: deferred
    skips = ledger.skips_for_pass(db, pass_id=first.pass_id)
    assert {(s.customer_id, s.reason) for s in skips} == {("C0001", "quiet_hours"),
                                                         ("C0003", "quiet_hours")}
    # 01:00 UTC: London and New York are in quiet hours, Tokyo is at 10:00
    second = send_offers(db, live, now=evening + timedelta(hours=2, minutes=30))
    assert second.sent == 1 and second.skipped["quiet_hours"] == 1
    # 09:00 London: the last deferred message goes out; nobody gets anything twice
    third = send_offers(db, live, now=datetime(2024, 1, 16, 9, 0, tzinfo=UTC))
    assert third.sent == 1
    assert sorted(r.form["To"] for r in fake_twilio.creates()) == \
        ["+12025550123", "+447400123401", "+447400123403"]


def test_quiet_hours_are_judged_at_each_send_not_at_the_pass_start(
        tmp_path: Path, db, db_url: str, fake_twilio: FakeTwilio) -> None:
    """Before: a pass that started at 20:59 kept texting after 21:00 (one `now` per pass)."""
    live = live_settings(tmp_path, db_url, fake_twilio, QUIET)
    publish_run(db, people(3, timezone="Europe/London"))
    before, after = (datetime(2024, 1, 15, 20, 59, tzinfo=UTC),
                     datetime(2024, 1, 15, 21, 1, tzinfo=UTC))

    def clock() -> datetime:  # the first message takes the pass past 21:00 London time
        return after if fake_twilio.created() else before

    summary = send_offers(db, live, clock=clock)
    assert summary.sent == 1 and summary.skipped["quiet_hours"] == 2
    assert [r.form["To"] for r in fake_twilio.creates()] == ["+447400123401"]
    assert [row.customer_id for row in ledger.all_messages(db)] == ["C0001"]


def test_frequency_cap_across_offers(tmp_path: Path, db, db_url: str,
                                     fake_twilio: FakeTwilio) -> None:
    live = live_settings(tmp_path, db_url, fake_twilio)
    publish_run(db, people(1))
    day = datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert send_offers(db, live, now=day).sent == 1
    publish_run(db, people(1, customer_class="New"))  # a new run: now a welcome-offer target
    capped = send_offers(db, live, now=day + timedelta(days=6))
    assert capped.sent == 0 and capped.skipped["frequency_cap"] == 1
    later = send_offers(db, live, now=day + timedelta(days=7, minutes=1))
    assert later.sent == 1
    assert [row.offer_id for row in ledger.all_messages(db)] == ["vip-thanks", "welcome"]


def test_consent_phone_and_length_skips_are_recorded(tmp_path: Path, db, db_url: str,
                                                     fake_twilio: FakeTwilio) -> None:
    live = live_settings(tmp_path, db_url, fake_twilio, "max_segments = 1\n")
    publish_run(db, [
        Person("C0001", consent=False),
        Person("C0002", phone=None),
        Person("C0003", phone="12345"),
        Person("C0004", phone="+447400123404", product="VERY LONG PRODUCT NAME " * 5),
        Person("C0005", phone="+447400123405", customer_class="Ordinary"),  # not a target
        Person("C0006", phone="+447400123406", product=None),
    ])
    summary = send_offers(db, live)
    assert summary.sent == 1 and summary.eligible == 1
    assert dict(summary.skipped) == {"no_consent": 1, "no_phone": 1, "invalid_number": 1,
                                     "too_long": 1}
    [request] = fake_twilio.creates()
    assert "our new arrivals" in request.form["Body"]


def test_no_published_run_is_not_an_error(db, live) -> None:  # type: ignore[no-untyped-def]
    summary = send_offers(db, live)
    assert summary.run_id is None and summary.note and "no published" in summary.note
