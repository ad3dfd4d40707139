"""A customers file: customer_id plus optional first_name, phone, signup_date, country,
sms_consent and timezone. Phones become E.164; a bad field is reported, not a reason to drop
the customer (an invalid phone is kept with phone_status 'invalid')."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from engine.columns import CUSTOMER_COLUMNS
from engine.ingest.readers import IngestError, RawFile, text_cells, whole_number_ids
from engine.phones import normalise_phone
from engine.store.staged import StagedFile
from engine.store.tables import CUSTOMERS, text_widths

OPTIONAL_COLUMNS = ["first_name", "phone", "signup_date", "country", "sms_consent", "timezone"]
# The stored width of each bounded text field a customers file gives as written (the phone is
# stored normalised or cut to its width). A longer value makes its line a rejected line, so
# SQLite (which would keep it) and PostgreSQL (which would refuse the whole file) agree.
FIELD_WIDTHS = text_widths(CUSTOMERS, ("customer_id", "first_name", "country", "timezone"))
TRUE_WORDS = {"1", "true", "t", "yes", "y"}
FALSE_WORDS = {"0", "false", "f", "no", "n"}


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def stage_customers(raw: RawFile, *, default_region: str) -> tuple[StagedFile, pd.DataFrame, int]:
    """(staged customers, rejects report, rows kept despite a reported field)."""
    frame = raw.frame
    if "customer_id" not in frame.columns:
        found = ", ".join(map(str, frame.columns[:12])) or "none"
        raise IngestError(f"{raw.path}: missing column(s) customer_id for a customers file "
                          f"(found: {found})")
    none = pd.Series(None, index=frame.index, dtype=object)
    texts = {name: text_cells(frame[name]) if name in frame.columns else none
             for name in ["customer_id", *OPTIONAL_COLUMNS]}
    texts["customer_id"] = whole_number_ids(texts["customer_id"])
    out = pd.DataFrame({name: texts[name] for name in ("customer_id", "first_name", "country")})
    problems: list[pd.Series] = []

    # Phones: one parse per distinct number (phonenumbers has no vectorised API).
    parsed = {raw_phone: normalise_phone(raw_phone, default_region)
              for raw_phone in texts["phone"].dropna().unique()}
    out["phone"] = texts["phone"].map(
        lambda value: parsed[value][0] if pd.notna(value) else None)
    out["phone_status"] = texts["phone"].map(
        lambda value: parsed[value][1] if pd.notna(value) else "unknown")
    invalid_phone = out["phone_status"] == "invalid"
    problems.append(("invalid phone " + texts["phone"].astype(str).map(repr)).where(invalid_phone))

    if "signup_date" in frame.columns and pd.api.types.is_datetime64_any_dtype(
            frame["signup_date"]):
        signup = pd.to_datetime(frame["signup_date"]).dt.normalize()
    else:
        signup = pd.to_datetime(texts["signup_date"], format="ISO8601", errors="coerce")
    bad_signup = texts["signup_date"].notna() & signup.isna()
    out["signup_date"] = signup.dt.normalize()
    problems.append(("bad signup_date " + texts["signup_date"].astype(str).map(repr))
                    .where(bad_signup))

    consent_text = texts["sms_consent"].str.lower()
    bad_consent = consent_text.notna() & ~consent_text.isin(TRUE_WORDS | FALSE_WORDS)
    out["sms_consent"] = consent_text.isin(TRUE_WORDS)
    problems.append(("bad sms_consent " + texts["sms_consent"].astype(str).map(repr)
                     + " (stored as false)").where(bad_consent))

    zones = {zone: _valid_zone(zone) for zone in texts["timezone"].dropna().unique()}
    bad_zone = texts["timezone"].map(lambda zone: pd.notna(zone) and not zones[zone]).astype(bool)
    out["timezone"] = texts["timezone"].where(~bad_zone, None)
    problems.append(("unknown timezone " + texts["timezone"].astype(str).map(repr))
                    .where(bad_zone))

    missing_id = out["customer_id"].isna()
    blank = pd.concat([text.isna() for text in texts.values()], axis=1).all(axis=1)
    reason = pd.Series(None, index=frame.index, dtype=object)
    reason[missing_id] = "missing customer_id"
    reason[blank] = "empty line"
    too_long = pd.Series(False, index=frame.index)
    for name, width in FIELD_WIDTHS.items():
        longer = texts[name].str.len().gt(width).fillna(False).astype(bool)
        message = (f"{name} longer than {width} characters "
                   + texts[name].astype(str).str.slice(0, 40).map(repr))
        reason = reason.where(reason.notna() | ~longer, message)
        too_long |= longer
    rejected = missing_id | too_long
    for problem in problems:
        reason = reason.where(reason.notna(), problem)
    reported = reason.notna()
    rejects = pd.concat([pd.DataFrame({"line": raw.line_numbers[reported.to_numpy()],
                                       "reason": reason[reported]}, index=frame.index[reported]),
                         frame.loc[reported].astype(str)], axis=1).reset_index(drop=True)
    kept = out.loc[~rejected]
    duplicate = kept["customer_id"].duplicated(keep="last")  # a later row updates an earlier one
    kept = kept.loc[~duplicate, CUSTOMER_COLUMNS].reset_index(drop=True)
    staged = StagedFile(path=str(raw.path), sha256=raw.sha256, kind="customers",
                        lines_read=len(frame), duplicates=int(duplicate.sum()),
                        rejected=int(reported.sum()), customers=kept)
    flagged = int((reported & ~rejected).sum())
    return staged, rejects, flagged
