"""Project-level views that belong to no app: the health check and the Prometheus metrics."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import asdict

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from mdms import metrics
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


def _metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read /metrics: it carries the bearer token, or comes from an
    allowed network (REMOTE_ADDR: a forwarded header is the client's to write)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return None
    if settings.METRICS_ALLOWED_NETWORKS:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(
            address in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS
        ):
            return None
    if not token and not settings.METRICS_ALLOWED_NETWORKS:
        error = {"code": "metrics_off", "message": "Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS."}
        return JsonResponse({"error": error}, status=403)
    if token:
        message = (
            "Send Authorization: Bearer <METRICS_TOKEN>." if not header else "The bearer token is not the right one."
        )
        response = JsonResponse({"error": {"code": "not_authenticated", "message": message}}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    error = {"code": "permission_denied", "message": "This address may not read the metrics."}
    return JsonResponse({"error": error}, status=403)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format (mdms.metrics), for a bearer of METRICS_TOKEN or an allowed network."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")
