from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Bulk loads (ingest) hand their range to billing.reprocess through mdms.core.reprocessing:
        # ingest sits below billing and monitoring in the layers and cannot call them itself.
        from billing.reprocess import reprocess_range
        from mdms.core import reprocessing

        if reprocess_range not in reprocessing.reprocessors:
            reprocessing.reprocessors.append(reprocess_range)
