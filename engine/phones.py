"""Phone numbers to E.164 with `phonenumbers`; the one place that decides what 'valid' means."""

from __future__ import annotations

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
