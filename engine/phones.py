"""Phone numbers to E.164 with `phonenumbers`; the one place that decides what 'valid' means."""

from __future__ import annotations

from typing import overload

import phonenumbers

# Ofcom keeps 07700 900000-900999 for drama and testing: never a real phone, so the demo data
# uses it. libphonenumber calls these numbers invalid (unallocated), we accept them on purpose.
RESERVED_TEST_PREFIXES = ("+447700900",)


def normalise_phone(raw: str | None, default_region: str) -> tuple[str | None, str]:
    """(E.164 number or the raw text, status) with status 'valid', 'invalid' or 'unknown' (empty).

    Numbers written without a country code are read in `default_region` (e.g. "GB").
    """
    text = (raw or "").strip()
    if not text:
        return None, "unknown"
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return text[:32], "invalid"
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    reserved = e164.startswith(RESERVED_TEST_PREFIXES) and len(e164) == 13
    if phonenumbers.is_valid_number(parsed) or reserved:
        return e164, "valid"
    return text[:32], "invalid"


# Characters a phone number may be written with besides its digits.
_SEPARATORS = frozenset(" -().")
# The last four digits show only when at least this many others stay hidden.
_HIDDEN_AT_LEAST = 6


@overload
def mask_phone(phone: str) -> str: ...
@overload
def mask_phone(phone: None) -> None: ...
def mask_phone(phone: str | None) -> str | None:
    """+44******0123: a stored phone for screens and logs. An E.164 number keeps its country
    code; of its other digits the last four show when at least six others stay hidden, else
    none does. Separators stay ("07700 900123", an invalid number kept as written, reads
    "***** **0123"); anything else that is not a phone number (an e-mail address typed in the
    phone column) is hidden whole. None when there is no phone."""
    if phone is None:
        return None
    head = ""
    if phone.startswith("+"):
        try:
            head = f"+{phonenumbers.parse(phone).country_code}"
        except phonenumbers.NumberParseException:
            head = "+"
        if not phone.startswith(head):
            head = "+"
    rest = phone[len(head):]
    if any(not ch.isdigit() and ch not in _SEPARATORS for ch in rest):
        return "*" * len(phone)
    digits = sum(ch.isdigit() for ch in rest)
    hidden = digits - 4 if digits - 4 >= _HIDDEN_AT_LEAST else digits
    masked = []
    for ch in rest:
        if ch.isdigit() and hidden > 0:
            masked.append("*")
            hidden -= 1
        else:
            masked.append(ch)
    return head + "".join(masked)
