from django.urls import path

from ingest import views

app_name = "ingest"

urlpatterns = [
    path("stats/", views.stats, name="stats"),
]
