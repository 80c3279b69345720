"""Tariffs and their price versions: master data the CIS reads (billing staff keep them in the portal)."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import viewsets

from mdms.core.models import Tariff
from portal.api import scoping
from portal.api.auth import Scope
from portal.api.base import ApiView
from portal.api.filters import TariffFilter
from portal.api.serializers import TariffSerializer


class TariffViewSet(ApiView, viewsets.ReadOnlyModelViewSet[Tariff]):
    """Tariffs with their time-of-use periods and price versions (oldest first)."""

    serializer_class = TariffSerializer
    filterset_class = TariffFilter
    ordering_fields = ["code"]
    scopes = {"*": Scope.CIS_READ}

    def get_queryset(self) -> QuerySet[Tariff]:
        return scoping.tariffs(self.request).order_by("code")
