"""The door page: a phone-sized page for staff that scans tickets (camera or a typed code) and shows the answer.

The page sends every code to the door's JSON API (with the session and its CSRF token), so the page and
a door device share one rule.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ticketing.shop.pages import shop_page

from .permissions import may_use_the_door


@require_GET
@login_required
@shop_page
def door(request: HttpRequest) -> HttpResponse:
    if not may_use_the_door(request.user):
        raise PermissionDenied("Checking tickets in needs the door permission.")
    return render(request, "door/door.html")
