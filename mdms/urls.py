from django.contrib import admin
from django.urls import include, path

from mdms.views import healthz

admin.site.site_header = "MDMS administration"
admin.site.site_title = "MDMS admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("ingest/", include("ingest.urls")),
    path("api/v1/billing/", include("billing.urls")),
    path("api/v1/monitoring/", include("monitoring.urls")),
    # Green Button Connect My Data: /oauth/..., /connections/, /espi/1_1/resource/...
    path("", include("greenbutton.urls")),
    # The REST API (portal.api): /api/v1/..., /api/schema/, /api/docs/.
    path("", include("portal.api.urls")),
    path("", include("portal.urls")),
]
