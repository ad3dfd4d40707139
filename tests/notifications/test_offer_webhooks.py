"""The Twilio webhooks in a small Flask app: signatures, status callbacks, STOP/START/HELP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import people, publish_run
from fake_twilio import FakeTwilio
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from engine.settings import Settings
from engine.store import offers as store
from notifications.offers import send_offers
from notifications.webhooks import create_blueprint
from tests.notifications import ledger

PHONE = "+447400123401"
STATUS_URL = "http://localhost/webhooks/twilio/status"
INBOUND_URL = "http://localhost/webhooks/twilio/inbound"


@pytest.fixture
def client(db, live: Settings) -> FlaskClient:
    app = Flask("webhook-test")
    app.register_blueprint(create_blueprint(live, db))
    return app.test_client()


def post_signed(client: FlaskClient, url: str, form: dict[str, str], token: str):  # type: ignore[no-untyped-def]
    signature = RequestValidator(token).compute_signature(url, form)
    return client.post(url, data=form, headers={"X-Twilio-Signature": signature})


def sent_message(db, live: Settings):  # type: ignore[no-untyped-def]
    publish_run(db, people(1))
    assert send_offers(db, live).sent == 1
    [row] = ledger.all_messages(db)
    return row


def test_unsigned_and_wrongly_signed_requests_get_403(client: FlaskClient, db, live: Settings,
                                                      fake_twilio: FakeTwilio) -> None:
    form = {"From": PHONE, "Body": "STOP"}
    for url in (STATUS_URL, INBOUND_URL):
        assert client.post(url, data=form).status_code == 403
        garbage = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
        assert client.post(url, data=form, headers=garbage).status_code == 403
        # signed with another token, or for another URL, or over a different body
        assert post_signed(client, url, form, "another-token").status_code == 403
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(
            "https://example.com/webhooks/twilio/inbound", form)
        assert client.post(url, data=form,
                           headers={"X-Twilio-Signature": signature}).status_code == 403
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(url, form)
        assert client.post(url, data={**form, "Body": "START"},
                           headers={"X-Twilio-Signature": signature}).status_code == 403
    assert ledger.opt_out_state(db, phone=PHONE) is None


def test_without_an_auth_token_every_webhook_is_refused(db, settings: Settings) -> None:
    app = Flask("webhook-test")
    app.register_blueprint(create_blueprint(settings, db))
    form = {"From": PHONE, "Body": "STOP"}
    signature = RequestValidator("").compute_signature(INBOUND_URL, form)
    response = app.test_client().post(INBOUND_URL, data=form,
                                      headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_status_callbacks_move_forward_idempotently(client: FlaskClient, db, live: Settings,
                                                    fake_twilio: FakeTwilio) -> None:
    row = sent_message(db, live)
    token = fake_twilio.auth_token

    def callback(status: str, **extra: str) -> str:
        form = {"MessageSid": row.provider_sid, "MessageStatus": status, **extra}
        assert post_signed(client, STATUS_URL, form, token).status_code in (200, 204)
        [current] = ledger.all_messages(db)
        return current.status

    assert callback("sent") == "sent"
    assert callback("sent") == "sent"
    assert callback("queued") == "sent"  # late, out of order: ignored
    assert callback("delivered") == "delivered"
    assert callback("sent") == "delivered"
    assert callback("delivered") == "delivered"


def test_failed_callback_keeps_the_error_code(client: FlaskClient, db, live: Settings,
                                              fake_twilio: FakeTwilio) -> None:
    row = sent_message(db, live)
    form = {"MessageSid": row.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert post_signed(client, STATUS_URL, form, fake_twilio.auth_token).status_code == 204
    [current] = ledger.all_messages(db)
    assert (current.status, current.error_code) == ("undelivered", "30003")
    unknown = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    assert post_signed(client, STATUS_URL, unknown, fake_twilio.auth_token).status_code == 204


def test_stop_then_start_then_help(client: FlaskClient, db, live: Settings,
                                   fake_twilio: FakeTwilio) -> None:
    token = fake_twilio.auth_token
    stop = post_signed(client, INBOUND_URL, {"From": PHONE, "Body": " stop "}, token)
    assert stop.status_code == 200 and "<Message>" not in stop.get_data(as_text=True)
    state = ledger.opt_out_state(db, phone=PHONE)
    assert state is not None and state.opted_out and state.source == "STOP"

    publish_run(db, people(1))
    assert send_offers(db, live).skipped["opted_out"] == 1
    assert fake_twilio.creates() == []

    start = post_signed(client, INBOUND_URL, {"From": PHONE, "Body": "START"}, token)
    assert start.status_code == 200
    state = ledger.opt_out_state(db, phone=PHONE)
    assert state is not None and not state.opted_out and state.source == "START"
    assert send_offers(db, live).sent == 1

    help_reply = post_signed(client, INBOUND_URL, {"From": PHONE, "Body": "Help"}, token)
    text = help_reply.get_data(as_text=True)
    assert help_reply.status_code == 200 and help_reply.mimetype == "application/xml"
    assert f"<Message>{live.notifications.help_text}</Message>" in text


@pytest.mark.parametrize("word", ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"])
def test_every_opt_out_keyword(client: FlaskClient, db, fake_twilio: FakeTwilio,
                               word: str) -> None:
    post_signed(client, INBOUND_URL, {"From": PHONE, "Body": word.lower()},
                fake_twilio.auth_token)
    state = ledger.opt_out_state(db, phone=PHONE)
    assert state is not None and state.opted_out


@pytest.mark.parametrize("word", ["START", "YES", "UNSTOP"])
def test_every_opt_in_keyword(client: FlaskClient, db, fake_twilio: FakeTwilio,
                              word: str) -> None:
    post_signed(client, INBOUND_URL, {"From": PHONE, "Body": "STOP"}, fake_twilio.auth_token)
    post_signed(client, INBOUND_URL, {"From": PHONE, "Body": word}, fake_twilio.auth_token)
    state = ledger.opt_out_state(db, phone=PHONE)
    assert state is not None and not state.opted_out


def test_other_replies_change_nothing(client: FlaskClient, db, fake_twilio: FakeTwilio) -> None:
    reply = post_signed(client, INBOUND_URL, {"From": PHONE, "Body": "please stop sending"},
                        fake_twilio.auth_token)
    assert reply.status_code == 200 and "<Message>" not in reply.get_data(as_text=True)
    assert ledger.opt_out_state(db, phone=PHONE) is None


def test_a_status_callback_before_the_sid_is_saved_is_applied_later(
        client: FlaskClient, db, live: Settings, fake_twilio: FakeTwilio) -> None:
    """Before: Twilio's 'delivered' arriving before the sender saved the sid got a 204 and was
    lost (the row stayed 'queued'). Now it is kept and applied when the sid is written."""
    publish_run(db, people(2))
    answers: list[int] = []

    def twilio_calls_back_at_once(message: dict[str, object]) -> None:
        for status in ("sent", "delivered", "sent"):  # out of order: the highest rank wins
            form = {"MessageSid": str(message["sid"]), "MessageStatus": status}
            answers.append(post_signed(client, STATUS_URL, form,
                                       fake_twilio.auth_token).status_code)

    fake_twilio.after_create = twilio_calls_back_at_once
    assert send_offers(db, live).sent == 2
    assert answers == [204] * 6
    rows = ledger.all_messages(db)
    assert [(row.status, row.provider_sid) for row in rows] == [
        ("delivered", message["sid"]) for message in fake_twilio.created()]
    assert ledger.early_statuses(db) == []


def test_a_callback_whose_sid_is_saved_between_its_two_looks_is_applied(
        client: FlaskClient, db, live: Settings, fake_twilio: FakeTwilio,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the callback's update missed the row, the sender then committed the sid, the
    second look saw the sid and answered 'no change': 'delivered' was neither applied nor kept
    (the row stayed 'queued'). Now the update is applied again once the sid is known."""
    publish_run(db, people(1))
    now = datetime.now(UTC)
    claim = store.claim_offer(engine=db, offer_key="vip-thanks:C0001", offer_id="vip-thanks",
                              customer_id="C0001", run_id=None, phone=PHONE, body="hi",
                              segments=1, status="sending", now=now)
    assert claim.message_id is not None
    sid = "SM" + "a" * 32
    real_update = store.update_status_by_sid
    looks: list[bool] = []

    def sender_commits_the_sid_right_after(**kwargs):  # type: ignore[no-untyped-def]
        updated = real_update(**kwargs)
        if not looks:  # the sending process saves the sid between the callback's two looks
            store.record_result(engine=db, message_id=claim.message_id, status="queued",
                                provider_sid=sid, now=now)
        looks.append(updated)
        return updated

    monkeypatch.setattr(store, "update_status_by_sid", sender_commits_the_sid_right_after)
    answer = post_signed(client, STATUS_URL, {"MessageSid": sid, "MessageStatus": "delivered"},
                         fake_twilio.auth_token)
    assert answer.status_code == 204
    assert looks[0] is False  # the first look missed the row
    [row] = ledger.all_messages(db)
    assert (row.status, row.provider_sid) == ("delivered", sid)
    assert ledger.early_statuses(db) == []
