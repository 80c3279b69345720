"""Mounted at api/v1/monitoring/ by mdms.urls."""

from django.urls import path

from monitoring import api

app_name = "monitoring"

urlpatterns = [
    path("anomalies/", api.ActiveAnomalies.as_view(), name="anomalies"),
    path("anomalies/counts/", api.AnomalyCounts.as_view(), name="anomaly-counts"),
    path("meters/<str:serial>/anomalies/", api.MeterAnomalies.as_view(), name="meter-anomalies"),
    path("incidents/", api.Incidents.as_view(), name="incidents"),
    path("out-now/", api.OutNow.as_view(), name="out-now"),
    path("silent-meters/", api.SilentMeters.as_view(), name="silent-meters"),
]
