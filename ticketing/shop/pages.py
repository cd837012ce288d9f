"""What every shop page shares: its language (Korean unless the visitor chose English) and its headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

DEFAULT_LANGUAGE = "ko"
# The pages load scripts, styles and images from this site only, and no one may frame them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

View = Callable[..., HttpResponse]


def language_of(request: HttpRequest) -> str:
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    return chosen if chosen in dict(settings.LANGUAGES) else DEFAULT_LANGUAGE


def shop_page(view: View) -> View:
    """Render the view in the visitor's language, with the shop's security headers."""

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        language = language_of(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = view(request, *args, **kwargs)  # rendered here, inside the language
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["Content-Language"] = language
        response.headers["Vary"] = "Cookie"
        return response

    return page
