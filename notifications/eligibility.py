"""Who may receive an offer now: consent, a valid E.164 number, no opt-out, the frequency cap,
quiet hours in the recipient's local time. Pure functions; the pass supplies the facts.

The recipient's time zones, most specific first: the customer's own `timezone` when set; else
the zones phonenumbers knows for the number (one for most countries, several for e.g. a US
number it cannot place); else settings.notifications.default_timezone. With several candidate
zones a message waits until it is outside quiet hours in all of them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

from engine.phones import normalise_phone
from engine.settings import NotificationSettings
from engine.store.offers import OfferTarget

UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True)
class Decision:
    reason: str | None  # None: eligible
    phone: str | None  # E.164 when the number is valid


def to_e164(raw: str | None, default_region: str) -> str | None:
    """The number in E.164 (+447700900123), or None when it is missing or not a valid number.

    Validity is decided in one place, engine.phones (which accepts the reserved test ranges).
    """
    phone, status = normalise_phone(raw, default_region)
    return phone if status == "valid" else None


def _zone(name: str | None) -> ZoneInfo | None:
    if not name or name == UNKNOWN_ZONE:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recipient_zones(phone: str, customer_timezone: str | None, default_timezone: str
                    ) -> list[ZoneInfo]:
    own = _zone(customer_timezone)
    if own is not None:
        return [own]
    zones = [zone for name in phone_timezones.time_zones_for_number(phonenumbers.parse(phone))
             if (zone := _zone(name)) is not None]
    if zones:
        return zones
    default = _zone(default_timezone)
    return [default] if default is not None else [ZoneInfo("UTC")]


def in_quiet_window(local: time, start: time, end: time) -> bool:
    """Whether `local` lies in [start, end); the window may wrap midnight; start == end: never."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def is_quiet_hours(now: datetime, zones: list[ZoneInfo], start: time, end: time) -> bool:
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    return any(in_quiet_window(moment.astimezone(zone).time().replace(tzinfo=None), start, end)
               for zone in zones)


def decide(target: OfferTarget, *, settings: NotificationSettings, now: datetime,
           opted_out: Collection[str], recently_messaged: Collection[str]) -> Decision:
    """The first reason this target may not get a message now, or Decision(None, phone)."""
    if not target.sms_consent:
        return Decision("no_consent", None)
    if not target.phone or not target.phone.strip():
        return Decision("no_phone", None)
    phone = to_e164(target.phone, settings.default_region)
    if phone is None or target.phone_status == "invalid":
        return Decision("invalid_number", phone)
    if phone in opted_out:
        return Decision("opted_out", phone)
    if settings.frequency_cap_days and target.customer_id in recently_messaged:
        return Decision("frequency_cap", phone)
    zones = recipient_zones(phone, target.timezone, settings.default_timezone)
    if is_quiet_hours(now, zones, settings.quiet_start, settings.quiet_end):
        return Decision("quiet_hours", phone)
    return Decision(None, phone)
