"""The analysts' filters, carried in the page URL (?since=...&until=...&classes=...&segments=...).

Keeping them in the URL means a page is a pure function of its address: bookmarkable, safe under
several workers, and nothing to remember server-side. Managers' URLs are ignored (no filtering).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlencode

SEPARATOR = "|"
# Dates a filter may name: outside this, a bound is no window of real sales, and near date.max a
# day after it does not exist (?until=9999-12-31 was a 500). Such a bound is ignored and said so.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    classes: tuple[str, ...] = field(default_factory=tuple)
    segments: tuple[str, ...] = field(default_factory=tuple)
    # Parameters that were not understood ("until=9999-12-31"), for the page to say so.
    # Not part of the cache key either (repr=False): any junk value would split the cache.
    ignored: tuple[str, ...] = field(default_factory=tuple, compare=False, repr=False)

    @property
    def has_window(self) -> bool:
        return self.since is not None or self.until is not None

    def to_query(self) -> str:
        """'?since=...' (or '' when no filter is set)."""
        params: dict[str, str] = {}
        if self.since:
            params["since"] = self.since.isoformat()
        if self.until:
            params["until"] = self.until.isoformat()
        if self.classes:
            params["classes"] = SEPARATOR.join(self.classes)
        if self.segments:
            params["segments"] = SEPARATOR.join(self.segments)
        return "?" + urlencode(params) if params else ""


def parse_date(value: Any) -> date | None:
    """A date from a URL parameter or a date picker value (ISO; time ignored), else None."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        return None
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def ignored_message(filters: Filters) -> str:
    """What the page says about parameters it could not use ('' when none)."""
    if not filters.ignored:
        return ""
    return (f"Ignored {', '.join(filters.ignored)}: not a date between {FIRST_DAY} and "
            f"{LAST_DAY} (YYYY-MM-DD).")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        value = SEPARATOR.join(str(v) for v in value)
    if not value:
        return ()
    return tuple(sorted({part for part in str(value).split(SEPARATOR) if part}))


def from_params(params: Mapping[str, Any], *, allowed: bool) -> Filters:
    """Filters from page kwargs or parsed query parameters; empty when the user may not filter."""
    if not allowed:
        return Filters()
    since, until = parse_date(params.get("since")), parse_date(params.get("until"))
    ignored = tuple(f"{name}={_shown(params[name])}" for name, day in (("since", since),
                                                                       ("until", until))
                    if day is None and _shown(params.get(name)))
    if since and until and since > until:
        since, until = until, since
    return Filters(since=since, until=until, classes=_names(params.get("classes")),
                   segments=_names(params.get("segments")), ignored=ignored)


def _shown(value: Any) -> str:
    """A raw parameter value, shortened for a message."""
    if isinstance(value, list):
        value = value[-1] if value else ""
    text = str(value or "")
    return text[:40] + ("…" if len(text) > 40 else "")


def from_search(search: str | None, *, allowed: bool) -> Filters:
    parsed = parse_qs((search or "").lstrip("?"))
    return from_params({key: values[-1] for key, values in parsed.items()}, allowed=allowed)
