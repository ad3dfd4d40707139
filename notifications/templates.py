"""Offer texts: placeholders filled per customer, and the SMS segment count of the result.

An SMS is 140 bytes: 160 GSM-7 septets, or 70 UCS-2 code units. A longer text is split into
segments that each lose room to the concatenation header (153 septets / 67 code units). Characters
of the GSM-7 extension table take two septets (an escape plus the character), and an escape pair is
never split across segments; any character outside GSM-7 makes the whole message UCS-2, where
characters beyond the BMP (emoji) take two code units and a surrogate pair is never split.
"""

from __future__ import annotations

import base64
import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import SegmintError
from engine.settings import NotificationSettings, OfferTemplate
from engine.store.offers import OfferTarget

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
PLACEHOLDERS = ("first_name", "product", "offer_code")


class TemplateError(SegmintError):
    """A template in settings cannot be used (unknown placeholder, bad braces)."""


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


@dataclass(frozen=True)
class RenderedOffer:
    body: str
    offer_code: str
    count: SegmentCount


def _pack(unit_sizes: list[int], single: int, multi: int) -> int:
    """Segments needed for characters of the given sizes; a character never straddles two."""
    if sum(unit_sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in unit_sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return segments


def count_segments(text: str) -> SegmentCount:
    """How many SMS segments `text` needs and in which encoding."""
    if not text:
        return SegmentCount("GSM-7", 0, 1)
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return SegmentCount("GSM-7", sum(sizes), _pack(sizes, 160, 153))
    sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return SegmentCount("UCS-2", sum(sizes), _pack(sizes, 70, 67))


def offer_code(offer_id: str, customer_id: str) -> str:
    """A short code, the same on every pass for this customer and offer (8 base32 characters)."""
    digest = hashlib.sha256(f"{offer_id}:{customer_id}".encode()).digest()
    return base64.b32encode(digest[:5]).decode("ascii")


def targets(template: OfferTemplate, target: OfferTarget) -> bool:
    """Whether the template is meant for this customer: class, then churn band and minimum
    365-day CLV when the template sets them (a customer without CLV never matches those)."""
    if target.customer_class not in template.target_classes:
        return False
    if template.churn_risk and target.churn_risk not in template.churn_risk:
        return False
    return template.min_clv_365d is None or (
        target.clv_365d is not None and target.clv_365d >= template.min_clv_365d)


def check_template(template: OfferTemplate) -> None:
    """Refuse placeholders other than PLACEHOLDERS (and attribute/index tricks) up front."""
    where = f"notifications.templates[{template.offer_id}].body"
    try:
        fields = list(string.Formatter().parse(template.body))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc} (write literal braces as {{{{ and }}}})") from None
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            raise TemplateError(f"{where}: unknown placeholder {{{field}}}; "
                                f"use {', '.join('{' + name + '}' for name in PLACEHOLDERS)}")


def check_templates(settings: NotificationSettings) -> list[OfferTemplate]:
    seen: set[str] = set()
    for template in settings.templates:
        if template.offer_id in seen:
            raise TemplateError(f"notifications.templates: offer_id {template.offer_id!r} "
                                "is used twice")
        seen.add(template.offer_id)
        check_template(template)
    return list(settings.templates)


def render(template: OfferTemplate, *, customer_id: str, first_name: str | None,
           product: str | None, settings: NotificationSettings) -> RenderedOffer:
    code = offer_code(template.offer_id, customer_id)
    values: Mapping[str, str] = {
        "first_name": (first_name or "").strip() or settings.fallback_first_name,
        "product": (product or "").strip() or settings.fallback_product,
        "offer_code": code,
    }
    body = template.body.format_map(values)
    return RenderedOffer(body=body, offer_code=code, count=count_segments(body))
