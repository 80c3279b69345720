from django.apps import AppConfig


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
