"""QR codes as inline SVG (segno, pure Python): crisp on screen and on paper, no image request."""

from __future__ import annotations

import segno
from django.utils.safestring import SafeString, mark_safe


def qr_svg(text: str, *, scale: int = 4) -> SafeString:
    """The QR code of ``text`` (error correction M, a quiet zone of 4 modules), as an <svg> element."""
    svg = segno.make(text, error="m").svg_inline(scale=scale, omitsize=False, title=None)
    return mark_safe(svg)  # noqa: S308 (segno's own markup; the text is inside path data, never as markup)
