"""The alerts beat job: thin, it calls the services (both idempotent: a second run, or two at once, tell nothing twice)."""

from __future__ import annotations

from celery import shared_task

from alerts import services


@shared_task(name="alerts.evaluate_rules", ignore_result=True)
def evaluate_rules() -> dict[str, int]:
    """Judge the rules that are due, then hand the waiting e-mails (new and retries) to the mail backend."""
    evaluated = services.rules_evaluate_due()
    emails = services.notification_emails_send()
    return {
        "rules": evaluated.rules,
        "notifications": evaluated.notifications,
        "errors": evaluated.errors,
        "emails_sent": emails.sent,
        "emails_failed": emails.failed,
    }
