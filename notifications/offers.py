"""One offer pass over the latest published run: who gets which offer, exactly once.

Exactly-once rests on the ledger (engine/store/offers.py; its statuses are engine.ledger's
LedgerStatus): the offer_message row with the unique
offer_key `<offer_id>:<customer_id>` is inserted with status 'sending' and committed BEFORE the
provider is called, then updated with Twilio's sid and status. A second process that reaches the
same key loses on the unique constraint and skips ('already_sent').

A pass that dies between the commit and Twilio's answer leaves a 'sending' row. The next pass
(once the row is older than the longest a send can take, `reconcile_grace`) asks Twilio for
messages to that number: found, the row gets its sid and status; not found, it becomes 'unknown'
for an operator. It is never resent automatically: Twilio may have accepted a message it has not
listed yet, and a customer receiving an offer twice is the failure this design exists to prevent.
A timed-out send is handled the same way at once (see notifications/sender.py).

A provider outage is not a permanent failure. When Twilio still answers 429 after the retries,
nothing was created: the claim is released and a later pass sends the message. When a 5xx was
among the answers Twilio may have created it, so the pass asks Twilio at once (as for a timeout):
found, it is recorded as sent; not found, the row becomes 'retry', which a later pass claims
again, asks Twilio once more, and only then sends. Each live pass first asks Twilio about
every 'retry' row, whether or not its customer is still a target: found, it is recorded (an
early delivery callback applied, the frequency cap counting it); not found and no longer
sendable (not a target, opted out, no consent, invalid number), it becomes 'failed' with the
reason, so no row waits in 'retry' for ever. A pass that stops (Twilio unreachable) after
a 5xx answer also leaves the row in 'retry', never releases it.

Time is read from a clock at each use, not once per pass: quiet hours are judged just before
each send, and a claim is stamped with the moment it is made (a concurrent pass presumes a
'sending' row abandoned only after `reconcile_grace` from that moment). `now=` fixes the clock
for tests.

Dry runs write rows under the key `dry-run:<offer_id>:<customer_id>` with status 'dry_run': they
never occupy a real key, do not count towards the frequency cap, and a repeated dry run
re-renders its row. Quiet hours defer: no row is written, only a skip with reason 'quiet_hours',
so a later pass sends the message. Opt-outs are read once per pass and again by each claim, in
its transaction, so a STOP that arrives during a pass is honoured by the next send.

One number gets an offer once: a second customer with the same phone (a household, a shop's
landline) is skipped with 'shared_phone' when any real ledger row of that offer holds the number
(read once per pass, like the cap; the job lock keeps passes from overlapping).
Holdouts (SPEC.md "Outcomes", docs/outcomes.md): each offer's eligible customers (every check
above passed) draw their group with engine.outcomes.assign_group, a pure function of the
customer, the offer and `holdout_salt`. A holdout customer gets a ledger row with status 'holdout'
under the offer's one unique key, and no message; the row does not count against the frequency
cap. The key keeps a customer's group for the offer across passes, restarts and concurrent
passes, as it keeps a message from going twice; a 'retry' row (a message Twilio may have) always
stays treatment. Dry runs assign groups too, under their 'dry-run:' keys.

The frequency cap is read once per pass (plus what the pass itself sends): two passes running at
the same moment could each send a *different* offer to one customer. The same offer is still
sent once (the unique key); the scheduler's job lock keeps passes from overlapping in practice.

What a pass did (its counts, groups and printed lines) is notifications/offer_summary.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from engine.dates import as_utc, utc_now
from engine.ledger import LedgerStatus as Status
from engine.ledger import offer_key
from engine.outcomes import HOLDOUT, TREATMENT, assign_group
from engine.phones import mask_phone
from engine.settings import OfferTemplate, Settings
from engine.store import customers as customer_store
from engine.store import offers as store
from engine.store.runs import published_run_id
from notifications.eligibility import decide
from notifications.offer_summary import OfferPassSummary
from notifications.sender import (
    INVALID_NUMBER_CODES,
    OPTED_OUT_CODE,
    ProviderError,
    SendOutcome,
    TwilioSender,
)
from notifications.templates import check_templates, render
from notifications.templates import targets as template_targets

log = logging.getLogger(__name__)


def reconcile_grace(settings: Settings) -> timedelta:
    """How old a 'sending' row must be before it is presumed abandoned: the longest one send can
    take (every attempt timing out plus every backoff), plus a minute."""
    ns = settings.notifications
    longest = (ns.max_retries + 1) * ns.request_timeout_seconds
    longest += ns.backoff_seconds * (2 ** ns.max_retries)
    return timedelta(seconds=longest + 60)


class _OfferPass:
    def __init__(self, engine: Engine, settings: Settings, summary: OfferPassSummary,
                 sender: TwilioSender | None, clock: Callable[[], datetime]) -> None:
        self.engine, self.settings, self.summary = engine, settings, summary
        self.ns = settings.notifications
        self.sender, self.clock = sender, clock
        self.moment = self.now()  # the pass's start: stale claims, the frequency cap
        self.skips: list[tuple[str, str, str]] = []
        self.opted_out: set[str] = set()
        self.recent: set[str] = set()
        self.existing: set[str] = set()
        # (offer_id, phone) -> the customer it went (or goes) to: at most one per number.
        self.phone_holders: dict[tuple[str, str], str] = {}
        self.checked: set[int] = set()  # 'retry' rows this pass already asked Twilio about
        self.retry_keys: set[str] = set()  # a message Twilio may have: always treatment
        self.held: set[str] = set()  # keys already held out by an earlier pass

    def now(self) -> datetime:
        return as_utc(self.clock())

    def skip(self, offer_id: str, customer_id: str, reason: str) -> None:
        self.skips.append((offer_id, customer_id, reason))
        self.summary.skipped[reason] += 1

    def reconcile_stale(self) -> None:
        assert self.sender is not None
        older_than = self.moment - reconcile_grace(self.settings)
        for pending in store.stale_sending(engine=self.engine, older_than=older_than):
            found = self.sender.find_sent(pending.phone, pending.body, pending.created_at)
            if found is not None:
                self.record_found(pending.id, found, only_if_status=[Status.SENDING])
                self.summary.reconciled += 1
                log.info("reconciled %s: twilio has it as %s", pending.offer_key, found.sid)
            else:
                store.record_result(
                    engine=self.engine, message_id=pending.id, status=Status.UNKNOWN,
                    now=self.now(),
                    error_text="interrupted before twilio answered and twilio lists no such "
                    "message; not resent: check and resolve by hand",
                    only_if_status=[Status.SENDING])
                self.summary.unknown += 1
                log.warning("offer %s to %s: state unknown after an interrupted pass",
                            pending.offer_key, mask_phone(pending.phone))

    def load(self, templates: list[OfferTemplate]) -> list[store.OfferTarget]:
        assert self.summary.run_id is not None
        classes = {name for template in templates for name in template.target_classes}
        targets = store.load_offer_targets(engine=self.engine, run_id=self.summary.run_id,
                                           classes=classes)
        if any(template.needs_clv for template in templates):
            targets = _with_clv(self.engine, self.summary.run_id, targets)
        self.opted_out = customer_store.opted_out_phones(engine=self.engine)
        if self.sender is not None:  # before the cap and the keys: a found message counts
            self.reconcile_retries(templates, targets)
        if self.ns.frequency_cap_days:
            since = self.moment - timedelta(days=self.ns.frequency_cap_days)
            self.recent = store.recently_messaged(engine=self.engine, since=since)
        keys = [offer_key(template.offer_id, target.customer_id)
                for template in templates for target in targets]
        statuses = store.ledger_statuses(engine=self.engine, offer_keys=keys)
        self.existing = {key for key, status in statuses.items() if status != Status.RETRY}
        self.held = {key for key, status in statuses.items() if status == Status.HOLDOUT}
        self.retry_keys = {key for key, status in statuses.items() if status == Status.RETRY}
        self.phone_holders = store.phone_holders(
            engine=self.engine, offer_ids=[template.offer_id for template in templates])
        return targets

    def reconcile_retries(self, templates: list[OfferTemplate],
                          targets: list[store.OfferTarget]) -> None:
        """Ask Twilio about every 'retry' row, target or not: found, it is recorded with its sid
        (and any early callback applied); not found and no longer sendable (not a target any
        more, opted out, no consent, invalid number), it becomes 'failed' with the reason.
        The rest stay 'retry' for this pass's claims, which do not ask Twilio again."""
        assert self.sender is not None
        sendable = {offer_key(template.offer_id, target.customer_id): target
                    for template in templates for target in targets
                    if template_targets(template, target)}
        for pending in store.retry_rows(engine=self.engine):
            found = self.sender.find_sent(pending.phone, pending.body, pending.created_at)
            if found is not None:
                if self.record_found(pending.id, found, only_if_status=[Status.RETRY]):
                    self.summary.reconciled += 1
                    log.info("reconciled %s: twilio has it as %s", pending.offer_key, found.sid)
                continue
            reason = self.unsendable(sendable.get(pending.offer_key), pending.phone)
            if reason is None:
                self.checked.add(pending.id)
                continue
            if store.record_result(
                    engine=self.engine, message_id=pending.id, status=Status.FAILED, now=self.now(),
                    error_text=f"not sent: {reason} after 5xx answers, and twilio lists no "
                    "such message", only_if_status=[Status.RETRY]):
                self.summary.failed += 1
                log.info("offer %s to %s: %s, twilio has no message; failed",
                         pending.offer_key, mask_phone(pending.phone), reason)

    def unsendable(self, target: store.OfferTarget | None, phone: str) -> str | None:
        """Why a 'retry' row can never be sent (a deferral such as quiet hours is no reason)."""
        if target is None:
            return "no longer a target of this offer"
        if phone in self.opted_out:
            return "opted_out"
        decision = decide(target, settings=self.ns, now=self.now(), opted_out=self.opted_out,
                          recently_messaged=set())
        if decision.reason in ("no_consent", "no_phone", "invalid_number", "opted_out"):
            return decision.reason
        return None

    def offer(self, template: OfferTemplate, target: store.OfferTarget) -> None:
        key = offer_key(template.offer_id, target.customer_id)
        if key in self.existing:
            self.skip(template.offer_id, target.customer_id,
                      "holdout" if key in self.held else "already_sent")
            return
        decision = decide(target, settings=self.ns, now=self.now(), opted_out=self.opted_out,
                          recently_messaged=self.recent)
        if decision.reason is not None or decision.phone is None:
            self.skip(template.offer_id, target.customer_id, decision.reason or "invalid_number")
            return
        holder = self.phone_holders.get((template.offer_id, decision.phone))
        if holder not in (None, target.customer_id):  # another customer with this number
            self.skip(template.offer_id, target.customer_id, "shared_phone")
            return
        rendered = render(template, customer_id=target.customer_id, first_name=target.first_name,
                          product=target.product, settings=self.ns)
        if rendered.count.segments > self.ns.max_segments:
            self.skip(template.offer_id, target.customer_id, "too_long")
            return
        if self.group(template.offer_id, target.customer_id, key) == HOLDOUT:
            self.hold_out(template, target, decision.phone, rendered.body,
                          rendered.count.segments)
            return
        self.summary.groups[(template.offer_id, TREATMENT)] += 1
        self.summary.eligible += 1
        self.recent.add(target.customer_id)
        phone = decision.phone
        self.phone_holders[(template.offer_id, phone)] = target.customer_id

        def claim(key: str, status: str) -> store.Claim:
            return store.claim_offer(
                engine=self.engine, offer_key=key, status=status, offer_id=template.offer_id,
                customer_id=target.customer_id, run_id=self.summary.run_id, phone=phone,
                body=rendered.body, segments=rendered.count.segments, now=self.now(),
                pass_id=self.summary.pass_id)

        def refused(reason: str | None) -> None:
            self.summary.eligible -= 1
            self.skip(template.offer_id, target.customer_id, reason or "already_sent")
            if reason == "opted_out":
                self.opted_out.add(phone)

        if self.sender is None:
            dry_key = offer_key(template.offer_id, target.customer_id, dry_run=True)
            dry = claim(dry_key, Status.DRY_RUN)
            if dry.refused == "opted_out":
                refused(dry.refused)
                return
            if dry.message_id is None:
                store.refresh_dry_run(engine=self.engine, offer_key=dry_key, body=rendered.body,
                                      segments=rendered.count.segments, phone=phone,
                                      now=self.now())
            self.summary.dry_runs += 1
            self.summary.previews.append((mask_phone(phone), rendered.body))
            return
        claimed = claim(key, Status.SENDING)
        message_id = claimed.message_id
        if message_id is None:
            refused(claimed.refused)
            return
        try:
            if claimed.earlier is not None:  # a 'retry' row: ask Twilio first, unless done
                if claimed.earlier.id not in self.checked and self.sent_before(claimed.earlier):
                    return
                store.rewrite_claim(engine=self.engine, message_id=message_id, phone=phone,
                                    body=rendered.body, segments=rendered.count.segments,
                                    run_id=self.summary.run_id, now=self.now())
            claimed_at = self.now()
            outcome = self.sender.send(phone, rendered.body)
        except ProviderError as exc:
            # Keep the claim whenever Twilio may have created the message (an earlier attempt,
            # or a 5xx answer in this send): a later pass reconciles it before sending. Release
            # it only when nothing can have been created (every earlier answer was a 429).
            if claimed.earlier is not None or exc.maybe_created:
                store.record_result(engine=self.engine, message_id=message_id, status=Status.RETRY,
                                    now=self.now(), only_if_status=[Status.SENDING],
                                    error_text="provider unavailable; a later pass retries")
            else:
                store.release_claim(engine=self.engine, message_id=message_id)
            raise
        self.apply(message_id, target.customer_id, phone, rendered.body, outcome, claimed_at)

    def group(self, offer_id: str, customer_id: str, key: str) -> str:
        if key in self.retry_keys:
            return TREATMENT
        return assign_group(customer_id, offer_id, salt=self.ns.holdout_salt,
                            holdout_share=self.ns.holdout_share)

    def hold_out(self, template: OfferTemplate, target: store.OfferTarget, phone: str,
                 body: str, segments: int) -> None:
        """Record the customer as the offer's holdout (a dry run's row in a dry run); no message,
        and the frequency cap does not count it."""
        dry = self.sender is None
        key = offer_key(template.offer_id, target.customer_id, dry_run=dry)
        claimed = store.claim_offer(
            engine=self.engine, offer_key=key, status=Status.DRY_RUN if dry else Status.HOLDOUT,
            offer_id=template.offer_id, customer_id=target.customer_id,
            run_id=self.summary.run_id, phone=phone, body=body, segments=segments,
            now=self.now(), pass_id=self.summary.pass_id, group=HOLDOUT)
        if claimed.refused == "opted_out":
            self.skip(template.offer_id, target.customer_id, "opted_out")
            self.opted_out.add(phone)
            return
        if claimed.message_id is None and not dry:  # a concurrent pass decided it first
            self.skip(template.offer_id, target.customer_id, "already_sent")
            return
        if claimed.message_id is None:
            store.refresh_dry_run(engine=self.engine, offer_key=key, body=body,
                                  segments=segments, phone=phone, now=self.now())
        self.summary.holdout += 1
        self.summary.groups[(template.offer_id, HOLDOUT)] += 1

    def sent_before(self, earlier: store.PendingMessage) -> bool:
        """Whether Twilio has the message of an earlier attempt that ended in 5xx answers (the
        row taken over keeps its id, so the found message is recorded on `earlier.id`)."""
        assert self.sender is not None
        found = self.sender.find_sent(earlier.phone, earlier.body, earlier.created_at)
        if found is None:
            return False
        self.record_found(earlier.id, found)
        self.summary.reconciled += 1
        log.info("reconciled %s: twilio has the earlier attempt as %s", earlier.offer_key,
                 found.sid)
        return True

    def record_found(self, message_id: int, found: SendOutcome, *,
                     only_if_status: list[str] | None = None) -> bool:
        """Record the message Twilio lists for a row: its sid and status."""
        return store.record_result(engine=self.engine, message_id=message_id,
                                   status=found.status or Status.QUEUED, provider_sid=found.sid,
                                   now=self.now(), only_if_status=only_if_status)

    def apply(self, message_id: int, customer_id: str, phone: str, body: str,
              outcome: SendOutcome, claimed_at: datetime) -> None:
        assert self.sender is not None
        if outcome.kind == "transient" and not outcome.maybe_created:
            # Only 429s: Twilio created nothing, so the key is free for a later pass.
            store.release_claim(engine=self.engine, message_id=message_id)
            self.summary.deferred += 1
            return
        if outcome.kind in ("ambiguous", "transient"):
            found = self.sender.find_sent(phone, body, claimed_at)
            if found is None and outcome.kind == "transient":
                store.record_result(engine=self.engine, message_id=message_id, status=Status.RETRY,
                                    now=self.now(), attempts=outcome.attempts,
                                    error_code=str(outcome.error_code),
                                    error_text=f"{outcome.error_text}; twilio lists no such "
                                    "message; a later pass checks again and retries")
                self.summary.deferred += 1
                return
            if found is None:
                store.record_result(engine=self.engine, message_id=message_id,
                                    status=Status.UNKNOWN,
                                    now=self.now(), attempts=outcome.attempts,
                                    error_text=f"{outcome.error_text}; twilio lists no such "
                                    "message; not resent: check and resolve by hand")
                self.summary.unknown += 1
                return
            outcome = SendOutcome("accepted", outcome.attempts, sid=found.sid, status=found.status)
        if outcome.kind == "accepted":
            store.record_result(engine=self.engine, message_id=message_id,
                                status=outcome.status or Status.QUEUED, provider_sid=outcome.sid,
                                attempts=outcome.attempts, now=self.now())
            self.summary.sent += 1
            return
        store.record_result(engine=self.engine, message_id=message_id, status=Status.FAILED,
                            error_code=str(outcome.error_code), error_text=outcome.error_text,
                            attempts=outcome.attempts, now=self.now())
        self.summary.failed += 1
        if outcome.error_code == OPTED_OUT_CODE:
            customer_store.set_opt_out(engine=self.engine, phone=phone, opted_out=True,
                              source=f"error {OPTED_OUT_CODE}", now=self.now())
            self.opted_out.add(phone)
        elif outcome.error_code in INVALID_NUMBER_CODES:
            customer_store.mark_phone_invalid(engine=self.engine, customer_id=customer_id)


def _with_clv(engine: Engine, run_id: int,
              targets: list[store.OfferTarget]) -> list[store.OfferTarget]:
    """The targets with the run's churn band and 365-day CLV (None where the run has none)."""
    from engine.store.clv import read_customers

    clv = read_customers(engine=engine, run_id=run_id).set_index("customer_id")
    risk, value = clv["churn_risk"].to_dict(), clv["clv_365d"].to_dict()
    return [replace(target, churn_risk=risk.get(target.customer_id),
                    clv_365d=value.get(target.customer_id)) for target in targets]



def send_offers(engine: Engine, settings: Settings, *, dry_run: bool | None = None,
                now: datetime | None = None,
                clock: Callable[[], datetime] | None = None) -> OfferPassSummary:
    """One pass over the latest published run. dry_run=None: a dry run unless Twilio is
    configured. The pass reads the time from `clock` (default the system clock) whenever it
    needs it; tests fix it with `now`, or pass their own clock."""
    if clock is None:
        clock = utc_now if now is None else (lambda: now)
    moment = as_utc(clock())
    configured = settings.secrets.twilio_configured
    dry = (not configured) if dry_run is None else dry_run
    templates = check_templates(settings.notifications)
    summary = OfferPassSummary(
        pass_id=f"{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", run_id=None, dry_run=dry,
        holdout_share=settings.notifications.holdout_share)
    secrets = settings.secrets
    if dry and not configured:
        summary.note = ("dry run: no sender is set (TWILIO_FROM_NUMBER or "
                        "TWILIO_MESSAGING_SERVICE_SID)"
                        if secrets.twilio_account_sid and secrets.twilio_auth_token
                        else "dry run: Twilio credentials are not set")
    if not settings.notifications.enabled:
        summary.note = "notifications.enabled is false: nothing sent"
        return summary
    summary.run_id = published_run_id(engine=engine)
    if summary.run_id is None:
        summary.note = "no published segmentation run yet: nothing to send"
        return summary
    sender = None if dry else TwilioSender(settings.secrets, settings.notifications)
    offer_pass = _OfferPass(engine, settings, summary, sender, clock)
    try:
        if sender is not None:
            offer_pass.reconcile_stale()
        targets = offer_pass.load(templates)
        for template in templates:
            for target in targets:
                if template_targets(template, target):
                    offer_pass.offer(template, target)
    finally:
        store.record_skips(engine=engine, pass_id=summary.pass_id, skips=offer_pass.skips,
                           now=offer_pass.now())
        log.info("offer pass %s over run %s: eligible %d, sent %d, dry-run %d, failed %d, "
                 "unknown %d, deferred %d, skipped %d", summary.pass_id, summary.run_id,
                 summary.eligible, summary.sent, summary.dry_runs, summary.failed,
                 summary.unknown, summary.deferred, sum(summary.skipped.values()))
    return summary
