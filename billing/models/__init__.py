"""Billing models, split by concern: usage (VEE edits, exceptions, estimates) and bills (runs, bills, reads)."""

from billing.models.bills import *  # noqa: F403
from billing.models.fetches import *  # noqa: F403
from billing.models.usage import *  # noqa: F403
