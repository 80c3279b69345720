from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # The task module queues webhook POSTs; the services that create deliveries never import it.
        from monitoring import tasks, webhook

        webhook.delivery_enqueuer_set(tasks.deliver_webhook_enqueue)
