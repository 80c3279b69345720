"""Project-level views that belong to no app: the health check."""

from __future__ import annotations

from dataclasses import asdict

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from mdms.core.health import service_states


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """JSON with the state of each service; 200 only when all are up, else 503."""
    states = service_states()
    ok = all(s.up for s in states)
    body = {"status": "ok" if ok else "degraded", "services": {s.name: asdict(s) for s in states}}
    for entry in body["services"].values():  # type: ignore[union-attr]
        entry.pop("name")
    return JsonResponse(body, status=200 if ok else 503)
