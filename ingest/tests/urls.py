"""The project's URLs as the lead wires them (mdms/urls.py includes ingest.urls under ingest/)."""

from django.urls import include, path

urlpatterns = [
    path("ingest/", include("ingest.urls")),
    path("", include("portal.urls")),
]
