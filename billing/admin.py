# The admin of each half of billing: usage (edits, exceptions) and bills (runs, bills, reads).
from billing import admin_bills, admin_usage  # noqa: F401
