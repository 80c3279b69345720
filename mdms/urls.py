from django.contrib import admin
from django.urls import include, path

from mdms.views import healthz, metrics_view

admin.site.site_header = "MDMS administration"
admin.site.site_title = "MDMS admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Prometheus (mdms.metrics): a bearer token or an allowed network, else refused.
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Green Button Connect My Data: /oauth/..., /connections/, /espi/1_1/resource/...
    path("", include("greenbutton.urls")),
    # The REST API, the one front for machines and scripts (portal.api): /api/v1/..., /api/schema/, /api/docs/.
    path("", include("portal.api.urls")),
    path("", include("portal.urls")),
]
