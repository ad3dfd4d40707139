"""Talking to Twilio through the official client: rate limit, retries, permanent errors.

The API's base URL is a setting (SEGMINT_TWILIO_BASE_URL, default https://api.twilio.com).
twilio-python 9 builds absolute URLs from each domain's hard-coded base; Twilio's documented way
to send them elsewhere is a custom HttpClient, so `BaseUrlHttpClient` swaps the scheme and host of
every request for the configured ones (after the client's own edge/region rewriting) and puts the
setting's path, if any, in front of the API path (a proxy at https://proxy.example/twilio).

Policy, per request:
- 429 and 5xx: retried up to notifications.max_retries times, waiting backoff_seconds * 2**n.
  After a 5xx, Twilio may have created the message, so before each further create the send
  asks Twilio (`find_sent`) and stops, accepted, when the message is there.
  When they run out, a send is 'transient' (not a permanent failure: a later pass retries it);
  `maybe_created` says whether a 5xx was among the answers, since Twilio may then have created
  the message, so the caller reconciles before any retry. Listing (`find_sent`) is retried the
  same way, then stops the pass with one line.
- any other 4xx: permanent, not retried (21610: the recipient replied STOP; 21211/21614: the
  number is invalid or cannot receive SMS; the caller records what that means).
- 401 / 20003 (bad credentials) and a refused connection (the request never left): the whole
  pass stops with one line (ProviderError). That request sent nothing, but when an earlier
  attempt of the same send had a 5xx answer the error says `maybe_created`: the caller keeps
  the claim for reconciliation instead of releasing it.
- a timeout or a connection dropped after the request went out is ambiguous: Twilio may have
  created the message. It is never retried blindly; the caller reconciles it with `find_sent`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from engine.dates import as_utc, utc_now
from engine.errors import SegmintError, one_line
from engine.ledger import LedgerStatus as Status
from engine.phones import mask_phone
from engine.settings import TWILIO_API_URL, NotificationSettings, Secrets

log = logging.getLogger(__name__)

OPTED_OUT_CODE = 21610
INVALID_NUMBER_CODES = frozenset({21211, 21614})
BAD_CREDENTIALS_CODE = 20003
RECONCILE_LOOKBACK = 50  # most recent messages to a number examined when reconciling
CLOCK_SKEW = timedelta(minutes=5)
# Twilio's statuses mapped onto the ledger's; 'sending' is reserved for our own claim.
PROVIDER_STATUS = {
    "accepted": Status.QUEUED, "scheduled": Status.QUEUED, "queued": Status.QUEUED,
    "sending": Status.QUEUED, "sent": Status.SENT, "delivered": Status.DELIVERED,
    "read": Status.DELIVERED, "undelivered": Status.UNDELIVERED, "failed": Status.FAILED,
    "canceled": Status.FAILED,
}


class ProviderError(SegmintError):
    """Twilio cannot be used for this pass (unreachable, credentials refused).

    maybe_created: a send had already had a 5xx answer when the pass stopped, so Twilio may
    have created the message; the caller must keep the claim (as 'retry'), not release it."""

    def __init__(self, message: str, *, maybe_created: bool = False) -> None:
        super().__init__(message)
        self.maybe_created = maybe_created


@dataclass(frozen=True)
class SendOutcome:
    kind: Literal["accepted", "rejected", "ambiguous", "transient"]
    attempts: int
    sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    maybe_created: bool = False  # transient: a 5xx answer, Twilio may have created the message


def ledger_status(provider_status: str | None) -> str:
    return PROVIDER_STATUS.get((provider_status or "").lower(), Status.QUEUED)


class BaseUrlHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends every request to `base_url` instead of *.twilio.com."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        # A private logger: the stock one writes request URLs (phone numbers) at INFO.
        quiet = logging.Logger("notifications.twilio_http", level=logging.WARNING)
        super().__init__(timeout=timeout, logger=quiet)
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderError(f"SEGMINT_TWILIO_BASE_URL {base_url!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise ProviderError(f"SEGMINT_TWILIO_BASE_URL {base_url!r} may not have a query or "
                                "fragment")
        self._scheme, self._netloc, self._prefix = parts.scheme, parts.netloc, parts.path

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, self._prefix + parts.path, parts.query,
                          parts.fragment))
        return super().request(method, url, *args, **kwargs)


class RateLimiter:
    """At most `rate` calls per second from this process (evenly spaced)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the connection itself failed, so the request cannot have reached Twilio."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return "NewConnectionError" in type(reason).__name__ or "NameResolution" in repr(reason)
    return False


def _page_status(exc: TwilioException) -> int:
    """The HTTP status of a page request the client refused ("Unable to fetch page", response)."""
    response = exc.args[1] if len(exc.args) > 1 else None
    return int(getattr(response, "status_code", 0) or 0)


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _cause(exc: requests.exceptions.RequestException) -> BaseException:
    """The urllib3 error under requests' wrapper (its reason), which says what went wrong."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return reason if isinstance(reason, BaseException) else exc


class TwilioSender:
    """One Twilio client for a pass; not shared across processes."""

    def __init__(self, secrets: Secrets, settings: NotificationSettings) -> None:
        if not secrets.twilio_configured:
            raise ProviderError("Twilio is not configured: set TWILIO_ACCOUNT_SID, "
                                "TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or "
                                "TWILIO_MESSAGING_SERVICE_SID")
        self._settings = settings
        self.base_url = secrets.segmint_twilio_base_url or TWILIO_API_URL
        http_client = BaseUrlHttpClient(self.base_url, timeout=settings.request_timeout_seconds)
        self._client = Client(secrets.twilio_account_sid, secrets.twilio_auth_token,
                              http_client=http_client)
        self._origin: dict[str, str] = (
            {"messaging_service_sid": secrets.twilio_messaging_service_sid}
            if secrets.twilio_messaging_service_sid
            else {"from_": secrets.twilio_from_number or ""}
        )
        if settings.status_callback_url:
            self._origin["status_callback"] = settings.status_callback_url
        self._limiter = RateLimiter(settings.rate_per_second)

    def _refuse(self, status: int, code: int | None, *, maybe_created: bool = False) -> None:
        if status == 401 or code == BAD_CREDENTIALS_CODE:
            raise ProviderError(f"Twilio at {self.base_url} refused the credentials "
                                f"(HTTP {status}, code {code}): check "
                                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                                maybe_created=maybe_created) from None

    def _backoff(self, attempts: int, status: int, what: str, to: str) -> bool:
        """Sleep before another attempt when `status` is transient and retries remain."""
        if not _transient(status) or attempts > self._settings.max_retries:
            return False
        delay = self._settings.backoff_seconds * 2 ** (attempts - 1)
        log.info("twilio answered %s to %s for %s; retry %d in %.2fs", status, what,
                 mask_phone(to), attempts, delay)
        time.sleep(delay)
        return True

    def _unreachable(self, exc: requests.exceptions.RequestException, *,
                     maybe_created: bool = False) -> ProviderError:
        reason = one_line(_cause(exc))[:200]
        return ProviderError(f"Twilio API at {self.base_url} is unreachable: {reason}",
                             maybe_created=maybe_created)

    def send(self, to: str, body: str) -> SendOutcome:
        """One message; retries transient failures; never raises for a per-message problem."""
        attempts = 0
        maybe_created = False
        started = utc_now()
        while True:
            if maybe_created:  # a 5xx came back: Twilio may have created it, never create blindly
                found = self._created_after_5xx(to, body, started)
                if found is not None:
                    return SendOutcome("accepted", attempts, sid=found.sid, status=found.status)
            self._limiter.wait()
            attempts += 1
            try:
                message = self._client.messages.create(to=to, body=body, **self._origin)
            except TwilioRestException as exc:
                self._refuse(exc.status, exc.code, maybe_created=maybe_created)
                maybe_created = maybe_created or exc.status >= 500
                if self._backoff(attempts, exc.status, "a send", to):
                    continue
                error_text = " ".join(str(exc.msg).split())[:300]
                if _transient(exc.status):
                    log.warning("twilio still answered %s for %s after %d attempts; a later "
                                "pass retries", exc.status, mask_phone(to), attempts)
                    return SendOutcome("transient", attempts, error_code=exc.code or exc.status,
                                       error_text=error_text, maybe_created=maybe_created)
                log.warning("twilio refused the message to %s: HTTP %s code %s", mask_phone(to),
                            exc.status, exc.code)
                return SendOutcome("rejected", attempts, error_code=exc.code or exc.status,
                                   error_text=error_text)
            except requests.exceptions.RequestException as exc:
                if _never_sent(exc):  # this request never left; an earlier 5xx may have created
                    raise self._unreachable(exc, maybe_created=maybe_created) from None
                log.warning("no answer from twilio for %s (%s); reconciling instead of "
                            "retrying", mask_phone(to), type(exc).__name__)
                return SendOutcome("ambiguous", attempts,
                                   error_text=f"no answer: {type(exc).__name__}")
            log.info("twilio accepted the message to %s as %s", mask_phone(to), message.sid)
            return SendOutcome("accepted", attempts, sid=message.sid,
                               status=ledger_status(message.status))

    def _created_after_5xx(self, to: str, body: str, since: datetime) -> SendOutcome | None:
        """find_sent before another create; a pass stopped here keeps maybe_created."""
        try:
            found = self.find_sent(to, body, since)
        except ProviderError as exc:
            raise ProviderError(str(exc), maybe_created=True) from None
        if found is not None:
            log.info("twilio answered 5xx for %s but has the message as %s; not sent again",
                     mask_phone(to), found.sid)
        return found

    def find_sent(self, to: str, body: str, since: datetime) -> SendOutcome | None:
        """The message with this body sent to `to` since `since`, if Twilio has one."""
        messages = self._list(to)
        earliest = as_utc(since) - CLOCK_SKEW
        for message in messages:
            created = message.date_created
            if message.body == body and (created is None or as_utc(created) >= earliest):
                return SendOutcome("accepted", 0, sid=message.sid,
                                   status=ledger_status(message.status))
        return None

    def _list(self, to: str) -> list[Any]:
        """The most recent messages to `to`; 429/5xx retried like a send, then ProviderError."""
        attempts = 0
        while True:
            self._limiter.wait()
            attempts += 1
            code: int | None = None
            try:
                return list(self._client.messages.list(to=to, limit=RECONCILE_LOOKBACK))
            except TwilioRestException as exc:
                status, code = exc.status, exc.code
            except TwilioException as exc:  # a page the client refused: ("Unable to ...", response)
                status = _page_status(exc)
            except requests.exceptions.RequestException as exc:
                raise self._unreachable(exc) from None
            self._refuse(status, code)
            if self._backoff(attempts, status, "a list", to):
                continue
            raise ProviderError(f"Twilio at {self.base_url} could not list messages: HTTP "
                                f"{status}" + (f" code {code}" if code else "")
                                + f" after {attempts} attempts")
