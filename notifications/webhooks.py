"""Twilio's webhooks, mounted on the dashboard's server under /webhooks/twilio/.

- POST /webhooks/twilio/status: a message's delivery status (MessageSid, MessageStatus,
  ErrorCode). The ledger row only ever moves forward (queued < sent < delivered / undelivered /
  failed), so a repeated or late callback changes nothing. A callback that arrives before the
  sending process has saved the sid is kept and applied when the sid is saved.
- POST /webhooks/twilio/inbound: a customer's reply. STOP-type keywords opt the number out,
  START-type keywords opt it back in, HELP/INFO get settings.notifications.help_text as TwiML.

Both answer 403 unless X-Twilio-Signature is valid for the URL as received and the form body,
checked with twilio's RequestValidator and TWILIO_AUTH_TOKEN (no token: every request is
refused). Behind a reverse proxy the WSGI server must see the public scheme and host (ProxyFix),
or the URL would not be the one Twilio signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, request
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from engine.dates import utc_now
from engine.phones import mask_phone
from engine.settings import Settings
from engine.store import customers as customer_store
from engine.store import offers as store
from notifications.eligibility import to_e164
from notifications.sender import PROVIDER_STATUS

log = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


def keyword(body: str) -> str:
    """The reply as a keyword: trimmed, upper case, trailing '.'/'!' dropped ('Stop.' -> STOP)."""
    return body.strip().rstrip(".!").strip().upper()


def _twiml(response: MessagingResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def create_blueprint(settings: Settings, engine: Engine) -> Blueprint:
    blueprint = Blueprint("twilio_webhooks", __name__, url_prefix="/webhooks/twilio")
    token = settings.secrets.twilio_auth_token
    validator = RequestValidator(token) if token else None
    ns = settings.notifications

    def signed(view: Callable[[], Any]) -> Callable[[], Any]:
        @wraps(view)
        def checked() -> Any:
            signature = request.headers.get("X-Twilio-Signature", "")
            if validator is None or not signature or not validator.validate(
                    request.url, request.form, signature):
                log.warning("refused an unsigned or wrongly signed request to %s", request.path)
                abort(403)
            return view()
        return checked

    @blueprint.post("/status")
    @signed
    def status() -> Any:
        sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
        provider_status = (request.form.get("MessageStatus")
                           or request.form.get("SmsStatus") or "").lower()
        ledger_status = PROVIDER_STATUS.get(provider_status)
        if not sid or ledger_status is None:
            return Response("ignored\n", status=200, mimetype="text/plain")
        error_code = request.form.get("ErrorCode") or None
        outcome = store.record_status_callback(engine=engine, provider_sid=sid,
                                               status=ledger_status, error_code=error_code,
                                               now=utc_now())
        log.info("status %s for %s (%s)", ledger_status, sid, outcome)
        return Response(status=204)

    @blueprint.post("/inbound")
    @signed
    def inbound() -> Any:
        phone = to_e164(request.form.get("From", ""), ns.default_region)
        word = keyword(request.form.get("Body", ""))
        reply = MessagingResponse()
        if phone is None:
            return _twiml(reply)
        if word in OPT_OUT_KEYWORDS:
            customer_store.set_opt_out(engine=engine, phone=phone, opted_out=True, source=word,
                                       now=utc_now())
            log.info("%s opted out (%s)", mask_phone(phone), word)
        elif word in OPT_IN_KEYWORDS:
            customer_store.set_opt_out(engine=engine, phone=phone, opted_out=False, source=word,
                                       now=utc_now())
            log.info("%s opted back in (%s)", mask_phone(phone), word)
        elif word in HELP_KEYWORDS:
            reply.message(ns.help_text)
        return _twiml(reply)

    return blueprint
