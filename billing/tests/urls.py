"""The billing API where mdms/urls.py mounts it (api/v1/billing/), for tests that do not need the rest."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("api/v1/billing/", include("billing.urls"))]
