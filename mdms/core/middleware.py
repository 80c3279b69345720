"""A database outage answers 503 with a page that says so, not a 500 with a stack trace.

PostgreSQL down (a restart, a failover, a network cut) makes any view that touches it raise
OperationalError or InterfaceError. This middleware, last in MIDDLEWARE so that its
process_exception runs first, turns those into a 503 with Retry-After: a short HTML page for
people, the API's error shape for /api/. Nothing needs resetting afterwards: Django closes a
connection that failed at the end of the request, and the next request opens a fresh one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exception)
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse(
                {
                    "error": {
                        "code": "service_unavailable",
                        "message": "The database is unavailable; try again in a minute.",
                        "field": None,
                    }
                },
                status=503,
            )
        else:
            # Rendered without the request: the context processors (user, notifications) would query
            # the database that is down.
            response = HttpResponse(render_to_string("503.html", {"retry_after_s": RETRY_AFTER_S}), status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        response["Cache-Control"] = "no-store"
        return response
