"""The API's routes, the OpenAPI schema and its offline documentation page.

Every /api/v1/ route of the project is here (apps expose selectors and services, not views); the
schema is built from this module alone (portal.api.schema), so it documents exactly these routes.
"""

from __future__ import annotations

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from portal.api import views_billing, views_commands, views_master, views_meters, views_ops, views_tariffs
from portal.api.errors import NotFoundView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("meters", views_meters.MeterViewSet, basename="meter")
router.register("customers", views_master.CustomerViewSet, basename="customer")
router.register("accounts", views_master.AccountViewSet, basename="account")
router.register("premises", views_master.PremiseViewSet, basename="premise")
router.register("incidents", views_ops.IncidentViewSet, basename="incident")
router.register("bills", views_billing.BillViewSet, basename="bill")
router.register("reads", views_billing.OnDemandReadViewSet, basename="read")
router.register("commands", views_commands.MeterCommandViewSet, basename="command")
router.register("tariffs", views_tariffs.TariffViewSet, basename="tariff")

v1 = [
    path("anomalies/", views_ops.ActiveAnomalyList.as_view(), name="anomalies"),
    path("anomalies/counts/", views_ops.AnomalyCountList.as_view(), name="anomaly-counts"),
    path("out-now/", views_ops.OutNowList.as_view(), name="out-now"),
    path("silent-meters/", views_ops.SilentMeterList.as_view(), name="silent-meters"),
    path("ingest/stats/", views_ops.IngestStats.as_view(), name="ingest-stats"),
    path("determinants/", views_billing.DeterminantList.as_view(), name="determinants"),
    path("determinants/pending/", views_billing.PendingDeterminantList.as_view(), name="determinants-pending"),
    path("bills/<int:pk>/intervals/", views_billing.BillIntervalList.as_view(), name="bill-intervals"),
    *router.urls,
]

urlpatterns = [
    path("api/v1/", include((v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: whatever else is under api/ is a 404 in the API's error format.
    re_path(r"^api/", NotFoundView.as_view()),
]
