"""The CIS-grade REST API under /api/v1/: scoped tokens for machines, sessions for people."""
