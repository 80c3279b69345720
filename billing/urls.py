"""Billing API routes, mounted by mdms/urls.py under api/v1/billing/."""

from __future__ import annotations

from django.urls import path

from billing import api

app_name = "billing"

urlpatterns = [
    path("determinants/", api.DeterminantsView.as_view(), name="determinants"),
    path("reads/", api.OnDemandReadListView.as_view(), name="reads"),
    path("reads/<int:pk>/", api.OnDemandReadDetailView.as_view(), name="read-detail"),
]
