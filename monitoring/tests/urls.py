"""The monitoring API mounted as mdms.urls mounts it, for tests that run before it is wired in."""

from django.urls import include, path

urlpatterns = [path("api/v1/monitoring/", include("monitoring.urls"))]
