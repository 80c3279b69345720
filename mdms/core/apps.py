from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_mongodb_collections(sender: Any, **kwargs: Any) -> None:
    """`manage.py migrate` also creates MongoDB's time series and indexes (make run and deploys run it).

    Without it the first insert made `readings` a plain collection with no (meter, ts) index, and one
    meter-day of raw readings scanned every reading stored. Only after a real migrate (it passes a
    plan), not after the `flush` that tests run between transactional tests.
    """
    if "plan" not in kwargs:
        return
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
        post_migrate.connect(_ensure_mongodb_collections, sender=self, dispatch_uid="mdms-core-mongodb-collections")
