from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_mongodb(sender: AppConfig, **kwargs: Any) -> None:
    """MongoDB's collections and indexes follow the code, as PostgreSQL's tables follow migrations.

    Without this, the first insert would create `readings` as a plain collection with no index:
    no time-series storage, and every per-meter read a collection scan.
    """
    from mdms.core import timeseries

    timeseries.ensure_collections()


class CoreConfig(AppConfig):
    name = "mdms.core"
    label = "core"
    verbose_name = "Master data"

    def ready(self) -> None:
        # The broker's accounts follow the meter registry: services call the hook after each
        # commit that issues credentials or changes a meter's status. Registered here, not in
        # services, so that core's domain code does not import the MQTT layer.
        from mdms.core import services
        from mdms.core.mqtt import broker

        if broker.meter_access_changed not in services.meter_access_changed_hooks:
            services.meter_access_changed_hooks.append(broker.meter_access_changed)
        if broker.meter_certificates_revoked not in services.meter_certificates_revoked_hooks:
            services.meter_certificates_revoked_hooks.append(broker.meter_certificates_revoked)
        # After `migrate` (make run, make test, the bench, a deployment's release step).
        post_migrate.connect(_ensure_mongodb, sender=self, dispatch_uid="mdms-ensure-mongodb")
