"""Billing models, split by concern: usage (VEE edits, exceptions, estimates), bills (runs, bills, reads)
and the SFTP delivery log of the outbox."""

from billing.models.bills import *  # noqa: F403
from billing.models.delivery import *  # noqa: F403
from billing.models.fetches import *  # noqa: F403
from billing.models.usage import *  # noqa: F403
