"""HTTP requests by view, method and status, and their latency (two samples per request, no query)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .metrics import HTTP_DURATION, HTTP_REQUESTS, http_method_label


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        # The route's name, not the path: ids in paths would make a series per reservation.
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route) if match else "unmatched"
        HTTP_REQUESTS.labels(view, http_method_label(request.method), str(response.status_code)).inc()
        HTTP_DURATION.labels(view).observe(time.perf_counter() - started)
        return response
