from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import get_language
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def won(amount: int | None) -> str:
    """An amount of won as a Korean shop writes it (180,000원), or ₩180,000 in English."""
    if amount is None:
        return ""
    return f"{amount:,}원" if get_language() == "ko" else f"₩{amount:,}"


@register.filter
def title_of(concert: Any) -> str:
    """The concert's title in the page's language: Korean as the data has it, English where given."""
    if get_language() != "ko" and concert.title_en:
        return str(concert.title_en)
    return str(concert.title)


@register.filter
def status_label(status: str) -> str:
    labels = {
        "AVAILABLE": _("Available"),
        "HELD": _("Held"),
        "SOLD": _("Sold"),
        "PENDING": _("Processing"),
        "CONFIRMED": _("Confirmed"),
        "SYSTEM_CANCELED": _("Cancelled by the system"),
        "CANCELED": _("Cancelled"),
        "TOPUP": _("Top-up"),
        "CHARGE": _("Payment"),
        "REFUND": _("Refund"),
    }
    return labels.get(status, status)


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key, 0)
